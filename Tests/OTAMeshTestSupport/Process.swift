import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A thread-safe growing byte buffer fed by a pipe reader.
public final class CapturedStream: @unchecked Sendable {
    // @unchecked: all access goes through `lock`.
    private let lock = NSLock()
    private var data = Data()
    private var ended = false

    public init() {}

    public func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
    public func end() { lock.withLock { ended = true } }
    /// True once the writer closed its end (the child exited or closed the stream).
    public var isEnded: Bool { lock.withLock { ended } }
    public var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    public var lines: [String] { text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
}

/// A child process with captured stdout/stderr.
public final class Child: @unchecked Sendable {
    // @unchecked: Process is used from the creating test only; the streams are locked.
    public let process = Process()
    public let stdout = CapturedStream()
    public let stderr = CapturedStream()

    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
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

    public var pid: Int32 { process.processIdentifier }

    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for exit (up to `timeout` seconds; then SIGKILL and report -1).
    @discardableResult
    public func wait(timeout: Double = 60) -> Int32 {
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
