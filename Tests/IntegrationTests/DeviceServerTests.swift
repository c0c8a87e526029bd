import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The device-facing server of a real agent, driven by real clients (curl, wget).
@Suite("device server", .serialized)
struct DeviceServerTests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures").path
    static let mac = "aa:bb:cc:dd:ee:ff"

    /// A gateway holding a 3 MiB raw image (`big/blob.bin`) and the esp32s3 fixture
    /// (`esp32/app/2.1.0.bin`, assigned to `mac`), with a site CA.
    struct Site {
        let dir: TemporaryDirectory
        let data: String
        let big: String
        let bigSHA: String
        let esp: String
        let espSHA: String
    }

    static func site(bigSize: Int = 3 << 20) throws -> Site {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let big = dir.file("blob.bin")
        let bytes = patterned(bigSize, seed: 42)
        try Data(bytes).write(to: URL(fileURLWithPath: big))
        let esp = "\(fixtures)/esp/esp32s3.bin"
        _ = try PublishedRelease(
            in: dir, images: [PublishedRelease.Image(path: "big/blob.bin", file: big), PublishedRelease.Image(path: "esp32/app/2.1.0.bin", file: esp)],
            importingInto: [data])
        for args in [
            ["device", "assign", "--data-dir", data, "AA-BB-CC-DD-EE-FF", "esp32/app/2.1.0.bin"],
            ["keys", "site-ca", "--data-dir", data],
        ] {
            let (status, out, err) = try run(args)
            #expect(status == 0, "\(args): \(out) \(err)")
        }
        return Site(
            dir: dir, data: data, big: big, bigSHA: sha256Hex(Data(bytes)), esp: esp,
            espSHA: sha256Hex(try Data(contentsOf: URL(fileURLWithPath: esp))))
    }

    static func curl(_ args: [String]) throws -> (Int32, String, String) {
        try runProgram("/usr/bin/curl", ["-sS", "--max-time", "30"] + args)
    }

    static func fileSHA(_ path: String) throws -> String { sha256Hex(try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Response headers as curl dumps them, without Date (which may tick between two requests).
    static func headers(_ dump: String) -> [String] {
        dump.split(separator: "\r\n").map(String.init).filter { !$0.lowercased().hasPrefix("date:") && !$0.isEmpty }
    }

    @Test("curl -C - and wget -c resume a partial download to the exact bytes")
    func resumeWithRealClients() throws {
        let site = try Self.site()
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let url = "\(gateway.device)/v1/targets/big/blob.bin"

        let viaCurl = site.dir.file("curl.bin")
        #expect(try Self.curl(["-r", "0-1048575", "-o", viaCurl, url]).0 == 0)
        #expect(fileSize(viaCurl) == 1 << 20)
        let (status, _, err) = try Self.curl(["-C", "-", "-o", viaCurl, url])
        #expect(status == 0, "\(err)")
        #expect(try Self.fileSHA(viaCurl) == site.bigSHA)

        let viaWget = site.dir.file("wget.bin")
        try Data(patterned(3 << 20, seed: 42).prefix(777_777)).write(to: URL(fileURLWithPath: viaWget))
        let (wgetStatus, _, wgetErr) = try runProgram("/usr/bin/wget", ["-q", "-c", "-O", viaWget, url])
        #expect(wgetStatus == 0, "\(wgetErr)")
        #expect(wgetErr.isEmpty)
        #expect(try Self.fileSHA(viaWget) == site.bigSHA)
    }

    @Test("HEAD returns exactly the GET headers on every route, Content-Length included")
    func headEqualsGet() throws {
        let site = try Self.site()
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let esp = ["-H", "x-ESP8266-STA-MAC: 11:22:33:44:55:66", "-H", "x-ESP8266-mode: sketch", "-H", "x-ESP8266-free-space: 900000"]
        let routes: [(String, [String])] = [
            ("/v1/targets/big/blob.bin", []),
            ("/v1/targets/big/blob.bin", ["-H", "Range: bytes=100-200"]),
            ("/v1/targets/big/blob.bin", ["-H", "Range: bytes=0-1,5-9"]),
            ("/v1/targets/big/blob.bin", ["-H", "Range: bytes=99999999-"]),
            ("/v1/blobs/sha256/\(site.bigSHA)", []),
            ("/v1/devices/\(Self.mac)/update?hardware=esp32s3&version=1.0.0", []),
            ("/v1/devices/\(Self.mac)/update?hardware=esp32s3&version=2.1.0-dev.7", []),
            ("/v1/devices/\(Self.mac)/firmware", []),
            ("/v1/devices/unknown/firmware", []),
            ("/v1/esp/update", esp),
            ("/v1/fota/\(Self.mac)/user2.bin", []),
            ("/v1/wiphone/\(Self.mac)/WiPhone-phone.ini", []),
            ("/v1/nothing/here", []),
        ]
        for (path, extra) in routes {
            let (_, head, _) = try Self.curl(["-I"] + extra + ["\(gateway.device)\(path)"])
            let (_, get, _) = try Self.curl(["-D", "-", "-o", "/dev/null"] + extra + ["\(gateway.device)\(path)"])
            #expect(!head.isEmpty && Self.headers(head) == Self.headers(get), "\(path) \(extra)")
        }
    }

    @Test("malformed and hostile Range headers get 200, 206 or 416 — and the server keeps serving")
    func hostileRanges() throws {
        let site = try Self.site()
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let url = "\(gateway.device)/v1/targets/big/blob.bin"
        let thousand = "bytes=" + (0..<1000).map { "\($0 * 3)-\($0 * 3 + 1)" }.joined(separator: ",")
        let cases: [(String, Int)] = [
            ("bytes=", 200), ("bytes=5-2", 200), ("bytes=18446744073709551616-", 200), ("bytes=-0", 416),
            ("bytes=99999999999-", 416), ("bytes=0-0", 206), ("bytes=--1", 200), ("bytes=1-2,3", 200), (thousand, 200),
            ("bytes=-5", 206), ("bytes=0-1,2-3", 206),
        ]
        for (header, expected) in cases {
            let (status, out, err) = try Self.curl(["-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Range: \(header)", url])
            #expect(status == 0, "\(err)")
            let parts = out.split(separator: " ")
            #expect(parts.first.map(String.init) == String(expected), "Range: \(header.prefix(40)) → \(out)")
            if expected == 200 { #expect(parts.last == "3145728") }
        }
        // A request line and headers beyond reason are refused without harm.
        let (_, huge, _) = try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Junk: \(String(repeating: "a", count: 100_000))", url])
        #expect(huge.hasPrefix("4") || huge == "000")
        let (_, after, _) = try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", url])
        #expect(after == "200")
    }

    @Test("HTTPS with the site CA: esp_https_ota's route with Range, pinned to the exported PEM; devices are registered")
    func httpsAndRegistry() throws {
        let site = try Self.site()
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let tls = try #require(gateway.tls)
        let ca = site.dir.file("ca.pem")
        let (exported, pem, _) = try run(["keys", "site-ca", "--data-dir", site.data, "--export-pem"])
        #expect(exported == 0 && pem.hasPrefix("-----BEGIN CERTIFICATE-----"))
        try pem.write(toFile: ca, atomically: true, encoding: .utf8)
        let port = tls.split(separator: ":").last!
        let firmware = "https://localhost:\(port)/v1/devices/\(Self.mac)/firmware?version=1.0.0"

        let whole = site.dir.file("whole.bin")
        #expect(try Self.curl(["--cacert", ca, "-o", whole, firmware]).0 == 0)
        #expect(try Self.fileSHA(whole) == site.espSHA)
        let (_, ranged, _) = try Self.curl(["--cacert", ca, "-r", "0-99", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", firmware])
        #expect(ranged == "206 100")
        // Without the site CA the connection is refused by the client: the certificate is the site's own.
        #expect(try Self.curl(["-o", "/dev/null", firmware]).0 != 0)

        // An ESP8266 asks over plain HTTP; both devices appear in the registry with what they reported.
        let (_, code, _) = try Self.curl([
            "-o", "/dev/null", "-w", "%{http_code}", "-H", "x-ESP8266-STA-MAC: 11:22:33:44:55:66",
            "-H", "x-ESP8266-version: 0.9", "\(gateway.device)/v1/esp/update",
        ])
        #expect(code == "304")
        var listing = ""
        let registered = waitUntil(timeout: 10) {
            listing = (try? run(["devices", "--data-dir", site.data, "--json"]).1) ?? ""
            return listing.contains("11:22:33:44:55:66") && listing.contains("\"family\":\"esp-https-ota\"")
        }
        #expect(registered, "\(listing)")
        #expect(listing.contains("\"version\":\"0.9\"") && listing.contains("\"lastAnswer\":\"no assignment\""))
        #expect(listing.contains("\"assignedTarget\":\"esp32\\/app\\/2.1.0.bin\"") || listing.contains("\"assignedTarget\":\"esp32/app/2.1.0.bin\""))
    }

    @Test("device assign refuses a target the trusted metadata does not list; takes effect on a running agent")
    func assignment() throws {
        let site = try Self.site()
        let (status, _, err) = try run(["device", "assign", "--data-dir", site.data, "dev-1", "no/such.bin"])
        #expect(status == 1 && err.contains("no/such.bin"))
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let url = "\(gateway.device)/v1/devices/dev-1/update?version=0.1"
        #expect(try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", url]).1 == "204")
        #expect(try run(["device", "assign", "--data-dir", site.data, "dev-1", "big/blob.bin"]).0 == 0)
        var body = ""
        let offered = waitUntil(timeout: 10) {
            body = (try? Self.curl([url]).1) ?? ""
            return body.contains(site.bigSHA)
        }
        #expect(offered, "\(body)")
        #expect(body.contains("\"size\":3145728") && body.contains("/v1/targets/big/blob.bin"))
    }

    @Test("a device port already in use is one line naming the key and the address, exit 1")
    func busyPort() throws {
        let site = try Self.site()
        let gateway = try Gateway.start(data: site.data)
        defer { gateway.stop() }
        let port = gateway.device.split(separator: ":").last!
        let (status, _, err) = try run(
            [
                "agent", "--data-dir", site.dir.file("other"), "--admin-listen", "127.0.0.1:0",
                "--device-listen", "127.0.0.1:\(port)", "--device-tls-listen", "off",
            ], timeout: 30)
        #expect(status == 1)
        #expect(err == "otamesh agent: device.listen 127.0.0.1:\(port): cannot listen: Address already in use (errno 98)\n")
    }

    @Test("an idle device connection, or one trickling its request head, is closed after device.idleTimeout; a slow download outlasting it is not cut")
    func idleTimeout() throws {
        let site = try Self.site(bigSize: Self.slowSize)
        let gateway = try Gateway.start(data: site.data, extra: ["--device-idle-timeout", "1s"])
        defer { gateway.stop() }
        let port = UInt16(gateway.device.split(separator: ":").last!)!
        // A client that connects and says nothing is disconnected (read returns 0).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        #expect(connected)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let started = Date()
        #expect(recv(fd, &byte, 1, 0) == 0)
        #expect(Date().timeIntervalSince(started) < 8)

        // A head trickled a byte every 200 ms (each byte resets a plain read timeout) is still
        // closed: the request must be complete within the idle timeout.
        let trickler = Self.openConnection(port)
        defer { close(trickler) }
        var trickleClosed = false
        let trickleStart = Date()
        for byte in Array("GET /v1/targets/big/blob.bin HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
            var one = byte
            if send(trickler, &one, 1, Int32(MSG_NOSIGNAL)) != 1 { trickleClosed = true; break }
            var pollFD = pollfd(fd: trickler, events: Int16(POLLIN), revents: 0)
            if poll(&pollFD, 1, 200) > 0, recv(trickler, &one, 1, Int32(MSG_DONTWAIT)) <= 0 { trickleClosed = true; break }
        }
        #expect(trickleClosed, "a trickled request head held the connection past the idle timeout")
        #expect(Date().timeIntervalSince(trickleStart) < 6)

        // The in-flight guard: a 16 MiB response to a reader with an 8 KiB receive buffer taking
        // ~4 MiB/s. The kernel holds at most tcp_wmem's 4 MiB of it on the gateway's side, so
        // when the 1 s idle timer comes due the gateway is provably still writing (checked
        // below); a connection cut then would truncate the body.
        let slow = Self.openConnection(port, receiveBuffer: 4096)
        defer { close(slow) }
        let request = Array("GET /v1/targets/big/blob.bin HTTP/1.1\r\nHost: gw\r\n\r\n".utf8)
        #expect(send(slow, request, request.count, 0) == request.count)
        var received: [UInt8] = []
        received.reserveCapacity(17 << 20)
        var chunk = [UInt8](repeating: 0, count: 16384)
        let readStart = Date()
        var atDeadline: Int?
        while Date().timeIntervalSince(readStart) < 60 {
            let n = recv(slow, &chunk, chunk.count, 0)
            if n <= 0 { break }
            received += chunk[0..<n]
            if atDeadline == nil, Date().timeIntervalSince(readStart) > 1.5 { atDeadline = received.count }
            if let end = Self.find(Array("\r\n\r\n".utf8), in: Array(received.prefix(1024))), received.count - end - 4 >= Self.slowSize { break }
            usleep(4_000)
        }
        let bodyStart = (Self.find(Array("\r\n\r\n".utf8), in: Array(received.prefix(1024))) ?? received.count) + 4
        let unread = Self.slowSize - (try #require(atDeadline, "the read took longer than 1.5 s") - bodyStart)
        #expect(unread > (4 << 20) + (1 << 19), "only \(unread) bytes were left 0.5 s past the idle timeout: the kernel may have buffered them all")
        #expect(received.count - bodyStart == Self.slowSize, "the slow download was cut")
        #expect(Array(received[min(bodyStart, received.count)...]) == Array(patterned(Self.slowSize, seed: 42)))
    }

    static let slowSize = 16 << 20

    static func openConnection(_ port: UInt16, receiveBuffer: Int32? = nil) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return fd
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}
