import Foundation
@_exported import OTAMeshTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Locates the built `otamesh` executable: $OTAMESH_BIN_DIR (set by `make test`), else the
/// package's .build/debug.
enum Binaries {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static var otamesh: String {
        let dir = ProcessInfo.processInfo.environment["OTAMESH_BIN_DIR"] ?? packageRoot.appendingPathComponent(".build/debug").path
        return "\(dir)/otamesh"
    }
}

/// A thread-safe growing byte buffer fed by a pipe reader.
final class CapturedStream: @unchecked Sendable {
    // @unchecked: all access goes through `lock`.
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    func end() { lock.withLock { ended = true } }
    /// True once the writer closed its end (the child exited or closed the stream).
    var isEnded: Bool { lock.withLock { ended } }
    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    var lines: [String] { text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
}

/// A child process with captured stdout/stderr.
final class Child: @unchecked Sendable {
    // @unchecked: Process is used from the creating test only; the streams are locked.
    let process = Process()
    let stdout = CapturedStream()
    let stderr = CapturedStream()

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let stdout = self.stdout
        let stderr = self.stderr
        out.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil; stdout.end() } else { stdout.append(chunk) }
        }
        err.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil; stderr.end() } else { stderr.append(chunk) }
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for exit (up to `timeout` seconds; then SIGKILL and report -1).
    @discardableResult
    func wait(timeout: Double = 60) -> Int32 {
        let exited = waitUntil(timeout: timeout) { !self.process.isRunning }
        if !exited {
            signal(SIGKILL)
            process.waitUntilExit()
            return -1
        }
        process.waitUntilExit()
        // Both pipes reach end-of-file once the child (and anything it forked) is gone.
        waitUntil(timeout: 5) { self.stdout.isEnded && self.stderr.isEnded }
        return process.terminationStatus
    }
}

/// Runs a command to completion and returns (exit status, stdout, stderr).
func run(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> (Int32, String, String) {
    let child = try Child(Binaries.otamesh, arguments, environment: environment)
    let status = child.wait(timeout: timeout)
    return (status, child.stdout.text, child.stderr.text)
}

func fileSize(_ path: String) -> Int64? {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : nil
}

/// A running `otamesh agent` on free loopback ports.
struct Gateway {
    let child: Child
    let admin: String
    let device: String
    /// The HTTPS device URL, when the data directory holds a site CA certificate.
    let tls: String?

    struct StartFailure: Error { let message: String }

    static func start(data: String, extra: [String] = []) throws -> Gateway {
        let child = try Child(Binaries.otamesh, ["agent", "--data-dir", data, "--admin-listen", "127.0.0.1:0",
                                                 "--device-listen", "127.0.0.1:0", "--device-tls-listen", "127.0.0.1:0"] + extra)
        let ready = waitUntil(timeout: 30) { child.stdout.text.contains("admin API + metrics: ") || !child.process.isRunning }
        func url(_ marker: String, _ scheme: String) -> String? {
            guard let line = child.stdout.lines.first(where: { $0.contains(marker) }) else { return nil }
            return line.split(separator: " ").first(where: { $0.hasPrefix(scheme + "://") }).map(String.init)
        }
        guard ready, child.process.isRunning, let admin = url("admin API + metrics: ", "http"), let device = url("device HTTP: ", "http")
        else {
            child.signal(SIGKILL)
            child.wait()
            throw StartFailure(message: "agent did not start: \(child.stdout.text) \(child.stderr.text)")
        }
        return Gateway(child: child, admin: admin, device: device, tls: url("device HTTPS: ", "https"))
    }

    /// SIGTERM and wait.
    func stop() {
        child.signal(SIGTERM)
        child.wait(timeout: 30)
    }
}

/// Runs any program to completion: (exit status, stdout, stderr).
func runProgram(_ executable: String, _ arguments: [String], timeout: Double = 120) throws -> (Int32, String, String) {
    let child = try Child(executable, arguments)
    let status = child.wait(timeout: timeout)
    return (status, child.stdout.text, child.stderr.text)
}
