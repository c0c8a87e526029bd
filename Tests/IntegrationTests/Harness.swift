import Foundation
@_exported import OTAMeshTestSupport
import Testing

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

/// A release published as an operator publishes one, through the CLI: `release init` in
/// DIR/repo, one `release add` per image, `release publish` into DIR/pub; given data
/// directories, `export` into DIR/b.tar and `import` of it into each, trusting the published
/// root. The CLI, not the library, so that these tests run what operators run.
struct PublishedRelease {
    /// One image to release: its target path, its file, and `--version` for an image that
    /// does not say its version itself.
    struct Image {
        let path: String
        let file: String
        var version: String? = nil
        /// `--hardware` (for files that do not say it: a .swu, a .raucb).
        var hardware: String? = nil

        /// An ESP32 app image of `version` and `size` bytes at `file`, made by
        /// `otamesh-devicesim make-image`, to release as `path`.
        static func esp32(_ path: String, version: String, size: Int, file: String) throws -> Image {
            let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", version, "--size", "\(size)", "-o", file])
            #expect(made.0 == 0, "\(made.2)")
            return Image(path: path, file: file)
        }
    }

    let repo: String
    let published: String
    let bundle: String
    /// The published root that gateways and imports trust.
    var root: String { "\(published)/metadata/1.root.json" }

    /// `publishedAs`: the directory under `dir` to publish into; `exporting`: export the bundle
    /// even with nothing to import it into; `timeout`: for each step (large images take longer).
    init(
        in dir: TemporaryDirectory, images: [Image], publishedAs name: String = "pub", exporting: Bool = false, importingInto data: [String] = [],
        timeout: Double = 120
    ) throws {
        repo = dir.file("repo")
        published = dir.file(name)
        bundle = dir.file("b.tar")
        var steps = [["release", "init", "--repo", repo]] + images.map(add) + [["release", "publish", "--repo", repo, published]]
        if exporting || !data.isEmpty {
            steps.append(["export", "--published", published, bundle])
            steps += data.map { ["import", "--data-dir", $0, "--root", root, bundle] }
        }
        try Self.perform(steps, timeout: timeout)
    }

    /// Releases one more image and publishes again.
    func release(_ image: Image) throws {
        try Self.perform([add(image), ["release", "publish", "--repo", repo, published]], timeout: 120)
    }

    private func add(_ image: Image) -> [String] {
        ["release", "add", "--repo", repo, "--path", image.path] + (image.version.map { ["--version", $0] } ?? [])
            + (image.hardware.map { ["--hardware", $0] } ?? []) + [image.file]
    }

    private static func perform(_ steps: [[String]], timeout: Double) throws {
        for args in steps {
            let (status, out, err) = try run(args, timeout: timeout)
            #expect(status == 0, "\(args): \(out) \(err)")
        }
    }
}

/// Writes a new site keyring (the gossip key) for `site` at `path`, with `otamesh keys site-keyring`.
func writeSiteKeyring(to path: String, site: String) throws {
    let args = ["keys", "site-keyring", "--out", path, "--site", site]
    let (status, out, err) = try run(args)
    #expect(status == 0, "\(args): \(out) \(err)")
}
