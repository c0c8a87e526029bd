import Foundation
import OTAMeshTestSupport
import Testing

/// What a device sends is printed safely: the issue's own requests (a screen clear, a terminal
/// retitle, colours, a forged line, a C1 CSI) leave no control sequence in `otamesh devices`,
/// its `--json`, `--site`, or the agent's log.
@Suite("hostile device strings")
struct HostileDeviceTests {
    static let requests = [
        "/v1/devices/dev%1b%5b2J1/update?hardware=esp32%1b%5d0;pwned%07&version=1.0%1b%5b31mRED",
        "/v1/devices/dev%0a99%20devices/update?hardware=esp32&version=1.0",
        "/v1/devices/dev-c1/update?hardware=esp32%c2%9b31m&version=1.0%e2%80%ae",
    ]

    /// ESC, BEL, LF-in-a-field, the C1 CSI and the right-to-left override.
    static func unsafe(_ text: String) -> Bool {
        text.unicodeScalars.contains { [0x1B, 0x07, 0x9B, 0x202E].contains($0.value) }
    }

    @Test("otamesh devices (text, --json, --site) and the agent's log carry no control sequence a device sent")
    func printedSafely() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway.start(data: dir.file("d"), extra: ["--node-name", "gw1"])
        defer { gateway.stop() }
        for path in Self.requests {
            let (status, _, err) = try runProgram("/usr/bin/curl", ["-s", "-o", "/dev/null", "\(gateway.device)\(path)"])
            #expect(status == 0, "\(err)")
        }
        var listing = ""
        let listed = waitUntil(timeout: 20) {
            listing = (try? run(["devices", "--data-dir", dir.file("d")]))?.1 ?? ""
            return listing.contains("3 devices")
        }
        #expect(listed, "\(listing)")
        #expect(!Self.unsafe(listing), "\(listing.debugDescription)")
        let lines = listing.split(separator: "\n")
        #expect(lines.count == 4 && !lines.contains { $0.hasPrefix("99 devices") }, "an LF in an id forged a line: \(listing.debugDescription)")
        #expect(listing.contains("dev\\u{1b}[2J1"), "the id is shown, escaped")

        let (jsonStatus, json, _) = try run(["devices", "--data-dir", dir.file("d"), "--json"])
        #expect(jsonStatus == 0 && !Self.unsafe(json), "\(json.debugDescription)")
        #expect(json.contains("\\u009b") && json.contains("\\u202e"), "C1 and bidi characters are escaped in JSON: \(json)")
        for line in json.split(separator: "\n") { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "still JSON: \(line)") }

        let (siteStatus, site, siteErr) = try run(["devices", "--site", "--admin", gateway.admin] + gateway.tokenArguments)
        #expect(siteStatus == 0 && !Self.unsafe(site), "\(site.debugDescription) \(siteErr)")
        #expect(!Self.unsafe(gateway.child.stderr.text + gateway.child.stdout.text), "the agent's log")
    }
}

/// A malformed request gets 400 with `Connection: close`, and the connection is closed.
@Suite("malformed device requests")
struct MalformedRequestTests {
    static let client = """
        import socket, sys
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        s.sendall(b"GARBAGE \\x01\\x02 NOT HTTP\\r\\n\\r\\n")
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    print("EOF", data.split(b"\\r\\n")[0].decode())
                    break
                data += chunk
        except socket.timeout:
            print("OPEN", data.split(b"\\r\\n")[0].decode())
        """

    /// Runs a python socket client against a fresh gateway's device port (or, with `admin`, its
    /// admin port): (exit status, stdout, stderr).
    static func runClient(_ source: String, admin: Bool = false, extra: [String] = [], timeout: Double) throws -> (Int32, String, String) {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway.start(data: dir.file("d"), extra: ["--gossip-listen", "off"] + extra)
        defer { gateway.stop() }
        let script = dir.file("client.py")
        try source.write(toFile: script, atomically: true, encoding: .utf8)
        let port = String((admin ? gateway.admin : gateway.device).split(separator: ":").last ?? "")
        return try runProgram("/usr/bin/env", ["python3", script, port], timeout: timeout)
    }

    @Test("a request that is not HTTP is answered 400 and the connection closed, not left open")
    func closedAfter400() throws {
        let (status, out, err) = try Self.runClient(Self.client, timeout: 30)
        #expect(status == 0, "\(err)")
        #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "EOF HTTP/1.1 400 Bad Request", "\(out)")
    }

    static let trickler = """
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        s.sendall(b"POST /v1/devices/d1/update HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1000\\r\\n\\r\\n")
        start = time.monotonic()
        for i in range(40):  # at most 40 s, one byte a second
            try:
                s.sendall(b"x")
                if s.recv(1) == b"":
                    print("CLOSED", int(time.monotonic() - start)); sys.exit(0)
            except socket.timeout:
                pass
            except OSError:
                print("CLOSED", int(time.monotonic() - start)); sys.exit(0)
        print("OPEN")
        """

    @Test("a request body trickled a byte at a time does not hold the connection past the body deadline")
    func trickledBody() throws {
        let (status, out, err) = try Self.runClient(Self.trickler, timeout: 90)
        #expect(status == 0, "\(err)")
        let words = out.split(separator: " ")
        #expect(words.first == "CLOSED" && (Int(words.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 99) <= 30, "\(out)")
    }

    static let idler = """
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
        start = time.monotonic()
        try:
            print("CLOSED" if s.recv(1) == b"" else "DATA", int(time.monotonic() - start))
        except socket.timeout:
            print("OPEN")
        """

    @Test("an idle connection to the admin API is closed after admin.idleTimeout")
    func adminIdle() throws {
        let (status, out, err) = try Self.runClient(Self.idler, admin: true, extra: ["--admin-idle-timeout", "2s"], timeout: 60)
        #expect(status == 0, "\(err)")
        #expect(out.hasPrefix("CLOSED"), "\(out)")
    }
}

/// The agent raises its soft limit on open files to the hard one at start.
@Suite("open files limit")
struct FileLimitTests {
    @Test("started with nofile 256:4096, the agent runs with a soft limit of 4096")
    func raised() throws {
        let dir = try TemporaryDirectory()
        let child = try Child(
            "/usr/bin/prlimit",
            [
                "--nofile=256:4096", Binaries.otamesh, "agent", "--data-dir", dir.file("d"),
                "--admin-listen", "127.0.0.1:0", "--device-listen", "127.0.0.1:0", "--device-tls-listen", "off",
                "--gossip-listen", "off", "--discovery", "off", "--device-discovery", "off",
            ])
        defer {
            child.signal(SIGTERM)
            child.wait(timeout: 30)
        }
        #expect(waitUntil(timeout: 30) { child.stdout.text.contains("ready") || !child.process.isRunning }, "\(child.stderr.text)")
        let limits = (try? String(contentsOfFile: "/proc/\(child.pid)/limits", encoding: .utf8)) ?? ""
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
        #expect(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).prefix(2) == ["4096", "4096"], "\(line)")
    }
}
