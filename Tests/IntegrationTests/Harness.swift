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

    static var directory: String {
        ProcessInfo.processInfo.environment["OTAMESH_BIN_DIR"] ?? packageRoot.appendingPathComponent(".build/debug").path
    }
    static var otamesh: String { "\(directory)/otamesh" }
    static var devicesim: String { "\(directory)/otamesh-devicesim" }
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
    /// The gossip address HOST:PORT, unless gossip is off.
    let gossip: String?
    /// The admin API's bearer token files (the agent creates them on first start).
    let tokenFile: String
    let readTokenFile: String

    /// The admin token, for `Authorization: Bearer …` (`tokenArguments` for the CLI).
    var token: String { Self.readToken(tokenFile) }
    var readToken: String { Self.readToken(readTokenFile) }
    /// `--token-file FILE`: how CLI calls in tests pass the token (never the token itself).
    var tokenArguments: [String] { ["--token-file", tokenFile] }

    static func readToken(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct StartFailure: Error { let message: String }

    /// `wrapper` runs the agent through another program (`prlimit --nofile=256:256 --`).
    static func start(data: String, extra: [String] = [], wrapper: [String] = []) throws -> Gateway {
        // Gossip on a free loopback port, no mDNS (tests never reach avahi in the host namespace).
        let mesh = extra.contains("--gossip-listen") ? [] : ["--gossip-listen", "127.0.0.1:0"]
        let discovery = extra.contains("--discovery") ? [] : ["--discovery", "off"]
        let adminListen = extra.contains("--admin-listen") ? [] : ["--admin-listen", "127.0.0.1:0"]
        let command = wrapper + [Binaries.otamesh]
        let child = try Child(
            command[0],
            Array(command.dropFirst()) + ["agent", "--data-dir", data] + adminListen
                + ["--device-listen", "127.0.0.1:0", "--device-tls-listen", "127.0.0.1:0"] + mesh + discovery + extra)
        // "data dir:" is the last line the agent prints when ready (after the URLs and gossip).
        let ready = waitUntil(timeout: 30) { child.stdout.text.contains("  data dir: ") || !child.process.isRunning }
        func url(_ marker: String, _ scheme: String) -> String? {
            guard let line = child.stdout.lines.first(where: { $0.contains(marker) }) else { return nil }
            return line.split(separator: " ").first(where: { $0.hasPrefix(scheme + "://") }).map(String.init)
        }
        // The admin API speaks HTTPS off loopback (admin.tls): its URL is https:// then.
        let admin = url("admin API + metrics: ", "http") ?? url("admin API + metrics: ", "https")
        guard ready, child.process.isRunning, let admin, let device = url("device HTTP: ", "http")
        else {
            child.signal(SIGKILL)
            child.wait()
            throw StartFailure(message: "agent did not start: \(child.stdout.text) \(child.stderr.text)")
        }
        let gossip = child.stdout.lines.first { $0.contains("  gossip: ") }.flatMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
        func value(_ flag: String) -> String? { extra.firstIndex(of: flag).flatMap { extra.indices.contains($0 + 1) ? extra[$0 + 1] : nil } }
        return Gateway(
            child: child, admin: admin, device: device, tls: url("device HTTPS: ", "https"), gossip: gossip,
            tokenFile: value("--admin-token-file") ?? "\(data)/keys/admin.token",
            readTokenFile: value("--admin-read-token-file") ?? "\(data)/keys/read.token")
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
