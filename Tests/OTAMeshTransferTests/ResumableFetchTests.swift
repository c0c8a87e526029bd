import Foundation
import OTAMeshCommon
import OTAMeshStore
import OTAMeshTestSupport
import Testing

@testable import OTAMeshTransfer

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP server with injected faults (Tests/Fixtures/servers/faultserver.py), one per test.
final class FaultServer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/servers/faultserver.py").path
    let child: Child
    let url: String

    struct Entry: Decodable {
        let method: String
        let range: String?
        let if_range: String?
        let status: Int?
        let sent: Int?
        let via: String?
    }

    init(file: String, _ flags: [String] = []) throws {
        let child = try Child("/usr/bin/env", ["python3", Self.script, file] + flags)
        self.child = child
        guard waitUntil(timeout: 20, { child.stdout.lines.first?.hasPrefix("PORT ") == true || !child.process.isRunning }),
            let line = child.stdout.lines.first, line.hasPrefix("PORT ")
        else {
            child.signal(SIGKILL)
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "fault server did not start: \(child.stderr.text)"])
        }
        url = "http://127.0.0.1:\(line.dropFirst(5))/\((file as NSString).lastPathComponent)"
    }

    deinit {
        child.signal(SIGKILL)
        child.wait(timeout: 10)
    }

    /// Requests the server finished (logged), in order.
    var log: [Entry] {
        child.stdout.lines.dropFirst().compactMap { try? JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
    }
}

/// The resumable fetch against real servers: drops, stalls, changed validators, proxies, and
/// failures that must not be retried.
@Suite("resumable fetch", .serialized)
struct ResumableFetchTests {
    let dir: TemporaryDirectory
    let file: String
    let bytes: [UInt8]
    let expected: ExpectedContent

    init() throws {
        dir = try TemporaryDirectory()
        file = dir.file("image.bin")
        bytes = patterned(2 << 20, seed: 9)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        expected = ExpectedContent(digest: try BlobDigest(hex: sha256Hex(bytes)), size: Int64(bytes.count))
    }

    func store() throws -> BlobStore {
        try BlobStore(configuration: StoreConfiguration(directory: dir.file("data")))
    }

    static func quick(retryTimeout: Double = 60) -> ResumableFetch {
        var policy = RetryPolicy()
        policy.retryTimeout = retryTimeout
        policy.initialBackoff = 0.01
        policy.maxBackoff = 0.05
        return ResumableFetch(policy: policy)
    }

    @Test("20 random connection drops: resumes each time, never re-fetches held bytes, commits the exact blob")
    func twentyDrops() async throws {
        let server = try FaultServer(file: file, ["--drops", "20", "--drop-chunk", "65536", "--seed", "7"])
        let store = try store()
        // The budget is generous: this checks resumption, not speed, and a loaded CI machine
        // (lab tests in parallel) has taken over 60 s for the 21 requests.
        let report = try await Self.quick(retryTimeout: 600).fetch(server.url, expected: expected, into: store)
        #expect(report.record.sha256 == expected.digest.hex)
        #expect(report.requests == 21, "\(server.child.stdout.text)")
        let chunk: Int64 = 64 << 10
        #expect(report.bytesReceived <= Int64(bytes.count) + 20 * chunk)
        let sentByServer = server.log.compactMap(\.sent).filter { $0 > 0 }.reduce(0, +)
        #expect(Int64(sentByServer) <= Int64(bytes.count) + 20 * chunk)
        // Every resumed request asked for exactly the bytes not yet held.
        let ranges = server.log.compactMap(\.range)
        #expect(ranges.count == 20 && ranges.allSatisfy { $0.hasPrefix("bytes=") && $0.hasSuffix("-") })
        #expect(server.log.dropFirst().allSatisfy { $0.if_range == "\"\(expected.digest.hex)\"" })
        #expect(try store.read(expected.digest) == bytes)
    }

    @Test("a partial left by an earlier run is resumed from its offset")
    func resumesPersistedPartial() async throws {
        let store = try store()
        guard case .receive(let ingest) = try store.beginIngest(expected: expected) else { Issue.record("present?"); return }
        try ingest.write(bytes[0..<(1 << 20)])
        let server = try FaultServer(file: file)
        let report = try await Self.quick().fetch(server.url, expected: expected, into: store)
        #expect(report.resumedFrom == 1 << 20 && report.requests == 1)
        #expect(report.bytesReceived == Int64(bytes.count - (1 << 20)))
        #expect(server.log.first?.range == "bytes=1048576-")
        #expect(try store.read(expected.digest) == bytes)
    }

    @Test("a changed validator makes the server send it whole (If-Range): the fetch starts over and still verifies")
    func validatorChange() async throws {
        let server = try FaultServer(file: file, ["--drops", "1", "--change-etag-after", "1"])
        let store = try store()
        let report = try await Self.quick().fetch(server.url, expected: expected, into: store)
        #expect(report.restarts == 1 && report.requests == 2)
        let second = try #require(server.log.last)
        #expect(second.range != nil && second.if_range != nil && second.status == 200)
        #expect(try store.read(expected.digest) == bytes)
    }

    @Test("a stall (no bytes for the stall window) counts as a network timeout and resumes")
    func stall() async throws {
        let server = try FaultServer(file: file, ["--stall-after", "100000", "--stall-seconds", "4"])
        let store = try store()
        var fetch = Self.quick()
        fetch.stallWindow = 1
        fetch.minBytesPerSecond = 1000
        let report = try await fetch.fetch(server.url, expected: expected, into: store)
        #expect(report.requests == 2)
        #expect(server.log.compactMap(\.range).first == "bytes=100000-")
        #expect(try store.read(expected.digest) == bytes)
    }

    @Test(
        "non-network failures make exactly one request and fail with their reason",
        arguments: [
            (["--status", "404"], "HTTP 404"), (["--status", "403"], "HTTP 403"),
            (["--corrupt"], "sha256 mismatch"), (["--extra", "10"], "Content-Length 2097162 differs from the signed length 2097152"),
        ])
    func notRetried(flags: [String], reason: String) async throws {
        let server = try FaultServer(file: file, flags)
        let store = try store()
        do {
            _ = try await Self.quick().fetch(server.url, expected: expected, into: store)
            Issue.record("fetch should fail")
        } catch let error as FetchError {
            #expect(error.requests == 1)
            #expect("\(error)".contains(reason), "\(error)")
            #expect("\(error)".contains("not retryable"))
        }
        // The server logs a request once it has finished with it (an aborted body takes a moment).
        #expect(waitUntil(timeout: 10) { server.log.count >= 1 } && server.log.count == 1)
        #expect(try store.list().isEmpty)
    }

    @Test(
        "a full disk (ENOSPC) fails at once: one request, the reason named, nothing left behind",
        .enabled(if: TestEnvironment.isRoot, "mounting a small tmpfs needs root"))
    func diskFull() async throws {
        let disk = try Tmpfs(at: dir.file("small"), size: "1m")
        let store = try BlobStore(configuration: StoreConfiguration(directory: disk.path + "/data"))
        let server = try FaultServer(file: file)
        do {
            _ = try await Self.quick().fetch(server.url, expected: expected, into: store)
            Issue.record("fetch should fail")
        } catch let error as FetchError {
            #expect(error.requests == 1)
            #expect("\(error)".contains("ENOSPC") && "\(error)".contains("not retryable"), "\(error)")
        }
        #expect(waitUntil(timeout: 10) { server.log.count >= 1 } && server.log.count == 1)
        #expect(try store.list().isEmpty && store.partials().isEmpty)
    }

    @Test("a resumed request answered with another start or another total fails at once")
    func badResumeAnswers() async throws {
        for (flags, serverFile, reason) in [
            (["--bad-content-range"], file, "server sent bytes 1048577-"),
            ([], dir.file("short.bin"), "416 Range Not Satisfiable"),
        ] {
            try Data(bytes.prefix(1 << 19)).write(to: URL(fileURLWithPath: dir.file("short.bin")))
            let store = try store()
            if case .receive(let ingest) = try store.beginIngest(expected: expected) { try ingest.write(bytes[0..<(1 << 20)]) }
            let server = try FaultServer(file: serverFile, flags)
            do {
                _ = try await Self.quick().fetch(server.url, expected: expected, into: store)
                Issue.record("fetch should fail")
            } catch let error as FetchError {
                #expect(error.requests == 1 && "\(error)".contains(reason), "\(error)")
            }
            #expect(waitUntil(timeout: 10) { server.log.count >= 1 } && server.log.count == 1)
            #expect(try store.partials().isEmpty)  // the poisoned partial is gone
        }
    }

    @Test("5xx is retried until the retry timeout; 503 honours Retry-After")
    func serverErrors() async throws {
        let server = try FaultServer(file: file, ["--status", "500"])
        let store = try store()
        let started = ResumableFetch.monotonic()
        do {
            _ = try await Self.quick(retryTimeout: 1).fetch(server.url, expected: expected, into: store)
            Issue.record("fetch should fail")
        } catch let error as FetchError {
            #expect(error.requests > 2)
            #expect("\(error)".contains("retry timeout of 1 s reached"), "\(error)")
        }
        #expect(ResumableFetch.monotonic() - started < 5)

        let busy = try FaultServer(file: file, ["--status", "503", "--retry-after", "0"])
        do {
            _ = try await Self.quick(retryTimeout: 1).fetch(busy.url, expected: expected, into: store)
        } catch let error as FetchError {
            #expect(error.failure == .http(status: 503, retryAfter: 0) && error.requests > 2)
        }
    }

    @Test("goes through an HTTP proxy (tinyproxy) unless NO_PROXY names the host")
    func proxy() async throws {
        let tinyproxy = "/usr/bin/tinyproxy"
        guard FileManager.default.isExecutableFile(atPath: tinyproxy) else {
            Issue.record("tinyproxy is not installed (make deps installs it)")
            return
        }
        let port = try Self.freePort()
        let conf = dir.file("tinyproxy.conf")
        try "Port \(port)\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 10\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let proxy = try Child(tinyproxy, ["-d", "-c", conf])
        defer {
            proxy.signal(SIGKILL)
            proxy.wait(timeout: 10)
        }
        #expect(waitUntil(timeout: 10) { Self.accepts(port: port) })
        let server = try FaultServer(file: file, ["--drops", "2"])
        var fetch = Self.quick()
        fetch.proxies = ProxySettings.from(environment: ["HTTP_PROXY": "http://127.0.0.1:\(port)"])
        let store = try store()
        let report = try await fetch.fetch(server.url, expected: expected, into: store)
        #expect(report.requests == 3)
        // AsyncHTTPClient tunnels through the proxy (CONNECT), so the proxy's log is the witness.
        func tunnels() -> Int {
            (proxy.stdout.text + proxy.stderr.text).components(separatedBy: "Established connection to host \"127.0.0.1\"").count - 1
        }
        #expect(waitUntil(timeout: 5) { tunnels() == 3 }, "\(proxy.stderr.text)")
        #expect(server.log.count == 3)

        fetch.proxies = ProxySettings.from(environment: ["http_proxy": "127.0.0.1:\(port)", "NO_PROXY": "localhost,127.0.0.1"])
        let other = ExpectedContent(digest: try BlobDigest(hex: sha256Hex(bytes)), size: Int64(bytes.count))
        _ = try store.remove(other.digest)
        _ = try await fetch.fetch(server.url, expected: other, into: store)
        #expect(server.log.count == 4 && tunnels() == 3)
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw CocoaError(.fileWriteUnknown) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

@Suite("proxy settings")
struct ProxySettingsTests {
    @Test("HTTP_PROXY / HTTPS_PROXY / NO_PROXY as curl reads them")
    func environment() {
        let settings = ProxySettings.from(environment: [
            "HTTP_PROXY": "http://proxy.site:3128", "https_proxy": "proxy.site:8443", "NO_PROXY": ".lan, 10.0.0.5,localhost",
        ])
        #expect(settings.proxy(forURL: "http://upstream.example/x") == .init(host: "proxy.site", port: 3128))
        #expect(settings.proxy(forURL: "https://upstream.example/x") == .init(host: "proxy.site", port: 8443))
        #expect(settings.proxy(forURL: "http://gw.site.lan:8070/v1") == nil)
        #expect(settings.proxy(forURL: "http://10.0.0.5/") == nil)
        #expect(settings.proxy(forURL: "http://localhost:80/") == nil)
        #expect(ProxySettings.from(environment: ["NO_PROXY": "*", "HTTP_PROXY": "p:1"]).proxy(forURL: "http://a/") == nil)
        #expect(ProxySettings.parse("http://user:pw@[::1]:3128/") == .init(host: "::1", port: 3128))
        #expect(ProxySettings.parse("socks5://p:1") == nil && ProxySettings.parse("p:99999") == nil)
    }
}
