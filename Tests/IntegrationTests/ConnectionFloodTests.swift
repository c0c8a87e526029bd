import Foundation
import OTAMeshTestSupport
import Testing

/// A LAN neighbour holding thousands of idle or trickling connections cannot stop a gateway:
/// run with its open-files limit at 256, it keeps serving real downloads to a device through
/// 2,000 such connections and is alive afterwards (issue 17, item 5).
@Suite("connection floods")
struct ConnectionFloodTests {
    /// Holds `total` connections to the device port from 127.0.0.2–11 for `seconds`: even ones
    /// idle, odd ones trickling a request head a byte a second; each one the gateway closes is
    /// opened again at once. Prints a JSON summary.
    static let attacker = """
        import errno, json, resource, selectors, socket, sys, time
        port, total, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, total + 512), hard))
        sel = selectors.DefaultSelector()
        stats = {"connects": 0, "closed_by_gateway": 0, "open_errors": 0, "trickled_bytes": 0}
        head = b"GET /v1/targets/esp32/app.bin HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: " + b"a" * 4000
        def open_one(i):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.bind(("127.0.0.%d" % (2 + i % 10), 0))
                s.connect_ex(("127.0.0.1", port))
            except OSError:
                stats["open_errors"] += 1
                s.close()
                return
            stats["connects"] += 1
            sel.register(s, selectors.EVENT_READ, [i, 0])
        for i in range(total):
            open_one(i)
        print("flooding", flush=True)
        end = time.monotonic() + seconds
        next_trickle = time.monotonic() + 1
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    i = key.data[0]
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    stats["closed_by_gateway"] += 1
                    open_one(i)
            if time.monotonic() >= next_trickle:
                next_trickle += 1
                for key in list(sel.get_map().values()):
                    i, sent = key.data
                    if i % 2 == 1 and sent < len(head):
                        try:
                            key.fileobj.send(head[sent:sent + 1])
                            key.data[1] = sent + 1
                            stats["trickled_bytes"] += 1
                        except OSError:
                            pass
        stats["held_at_end"] = len(sel.get_map())
        print(json.dumps(stats), flush=True)
        """

    static func metric(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    static func procStatus(_ pid: Int32) -> (fds: Int, rssKiB: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss =
            status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? -1
        return (fds, rss)
    }

    @Test(
        "at nofile 256, 2,000 idle or trickling connections leave downloads served and the agent alive",
        .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit (util-linux)"))
    func floodKeepsServing() throws {
        let dir = try TemporaryDirectory()
        let image = dir.file("app.bin")
        let app = try PublishedRelease.Image.esp32("esp32/app.bin", version: "1.0.0", size: 2_000_000, file: image)
        _ = try PublishedRelease(in: dir, images: [app], importingInto: [dir.file("d")], timeout: 300)
        let expected = try #require(try runProgram("/usr/bin/sha256sum", [image]).1.split(separator: " ").first.map(String.init))
        let gateway = try Gateway.start(data: dir.file("d"), wrapper: ["/usr/bin/prlimit", "--nofile=256:256", "--"])
        defer { gateway.stop() }
        let port = try #require(URL(string: gateway.device)?.port)
        let before = Self.procStatus(gateway.child.pid)

        let script = dir.file("attacker.py")
        try Self.attacker.write(toFile: script, atomically: true, encoding: .utf8)
        let flood = try Child("/usr/bin/env", ["python3", script, "\(port)", "2000", "25"])
        defer { flood.signal(SIGKILL); flood.wait() }
        #expect(waitUntil(timeout: 30) { flood.stdout.text.contains("flooding") || !flood.process.isRunning }, "the flood started: \(flood.stderr.text)")
        // The caps are at work before the first download.
        #expect(
            waitUntil(timeout: 20) {
                let text = (try? runProgram("/usr/bin/curl", ["-s", "\(gateway.admin)/metrics"]).1) ?? ""
                return (Self.metric(text, "otamesh_connections_shed_total{listener=\"device\"}") ?? 0) > 100
            }, "connections are being shed")

        var served = 0
        var worst = 0.0
        var peak = before
        for n in 0..<12 {
            let out = dir.file("got-\(n).bin")
            let started = Date()
            let (status, _, err) = try runProgram("/usr/bin/curl", ["-sf", "--max-time", "30", "-o", out, "\(gateway.device)/v1/targets/esp32/app.bin"])
            worst = max(worst, Date().timeIntervalSince(started))
            let sum = try runProgram("/usr/bin/sha256sum", [out]).1.split(separator: " ").first.map(String.init)
            #expect(status == 0 && sum == expected, "download \(n) during the flood: curl \(status) \(err)")
            if status == 0 && sum == expected { served += 1 }
            let now = Self.procStatus(gateway.child.pid)
            peak = (max(peak.fds, now.fds), max(peak.rssKiB, now.rssKiB))
        }
        #expect(flood.wait(timeout: 60) == 0, "attacker: \(flood.stderr.text)")
        let stats = flood.stdout.lines.last ?? ""
        #expect(gateway.child.process.isRunning, "the agent is alive after the flood: \(gateway.child.stderr.text.suffix(2000))")
        #expect(peak.fds <= 256)
        let (afterStatus, _, _) = try runProgram(
            "/usr/bin/curl", ["-sf", "--max-time", "10", "-o", dir.file("after.bin"), "\(gateway.device)/v1/targets/esp32/app.bin"])
        #expect(afterStatus == 0, "a download after the flood")
        let metrics = try runProgram("/usr/bin/curl", ["-s", "\(gateway.admin)/metrics"]).1
        let shed = Self.metric(metrics, "otamesh_connections_shed_total{listener=\"device\"}") ?? 0
        let refused = Self.metric(metrics, "otamesh_connections_refused_total{listener=\"device\"}") ?? 0
        print(
            """
            connection flood at nofile 256: \(served)/12 downloads of 2 MB served, slowest \(String(format: "%.2f", worst)) s; \
            agent fds \(before.fds) → peak \(peak.fds), RSS \(before.rssKiB / 1024) → peak \(peak.rssKiB / 1024) MiB; \
            shed \(Int(shed)), refused \(Int(refused)); attacker \(stats)
            """)
    }

    /// 200 streams from 20 addresses, each announcing a 1 MiB gossip frame and sending most of
    /// it, never a valid one. Prints the peak bytes sent.
    static let gossipFlood = """
        import socket, sys, time
        port, streams = int(sys.argv[1]), int(sys.argv[2])
        socks, sent = [], 0
        for i in range(streams):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (2 + i % 20), 0))
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall((1 << 20).to_bytes(4, "big"))
                socks.append(s)
            except OSError:
                s.close()
        chunk = b"x" * 65536
        for _ in range(14):
            for s in list(socks):
                try:
                    s.send(chunk)
                    sent += len(chunk)
                except OSError:
                    socks.remove(s)
        print("held", len(socks), "sent", sent, flush=True)
        time.sleep(3)
        """

    @Test("gossip: 200 unauthenticated streams announcing 1 MiB frames cannot make the agent hold 200 MiB")
    func gossipPreAuthCap() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway.start(data: dir.file("d"))
        defer { gateway.stop() }
        let port = try #require(gateway.gossip?.split(separator: ":").last.flatMap { Int($0) })
        let before = Self.procStatus(gateway.child.pid)
        let script = dir.file("gossip-flood.py")
        try Self.gossipFlood.write(toFile: script, atomically: true, encoding: .utf8)
        let flood = try Child("/usr/bin/env", ["python3", script, "\(port)", "200"])
        defer { flood.signal(SIGKILL); flood.wait() }
        var peak = before
        #expect(
            waitUntil(timeout: 60) {
                let now = Self.procStatus(gateway.child.pid)
                peak = (max(peak.fds, now.fds), max(peak.rssKiB, now.rssKiB))
                return flood.stdout.text.contains("held") || !flood.process.isRunning
            })
        for _ in 0..<10 {
            let now = Self.procStatus(gateway.child.pid)
            peak = (max(peak.fds, now.fds), max(peak.rssKiB, now.rssKiB))
            usleep(100_000)
        }
        flood.wait(timeout: 30)
        let metrics = try runProgram("/usr/bin/curl", ["-s", "\(gateway.admin)/metrics"]).1
        let refusedStreams = Self.metric(metrics, "otamesh_gossip_streams_refused_total") ?? 0
        let shed = Self.metric(metrics, "otamesh_connections_shed_total{listener=\"gossip\"}") ?? 0
        print(
            "gossip pre-auth flood: \(flood.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)); RSS \(before.rssKiB / 1024) → peak \(peak.rssKiB / 1024) MiB, "
                + "fds peak \(peak.fds); streams refused \(Int(refusedStreams)), connections shed \(Int(shed))")
        #expect(peak.rssKiB - before.rssKiB < 64 * 1024, "RSS grew \((peak.rssKiB - before.rssKiB) / 1024) MiB")
        #expect(refusedStreams + shed > 0, "the caps were at work")
        #expect(gateway.child.process.isRunning)
        let (status, _, _) = try runProgram("/usr/bin/curl", ["-sf", "-o", "/dev/null", "\(gateway.admin)/healthz"])
        #expect(status == 0)
    }

    @Test("admin API: 400 idle or trickling connections are shed; the admin still gets answers")
    func adminFlood() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway.start(data: dir.file("d"), extra: ["--gossip-listen", "off"])
        defer { gateway.stop() }
        let port = try #require(URL(string: gateway.admin)?.port)
        let script = dir.file("attacker.py")
        try Self.attacker.write(toFile: script, atomically: true, encoding: .utf8)
        let flood = try Child("/usr/bin/env", ["python3", script, "\(port)", "400", "8"])
        defer { flood.signal(SIGKILL); flood.wait() }
        #expect(waitUntil(timeout: 30) { flood.stdout.text.contains("flooding") || !flood.process.isRunning })
        var answered = 0
        for _ in 0..<5 {
            let (status, body, _) = try runProgram(
                "/usr/bin/curl",
                [
                    "-sf", "--max-time", "5", "-H", "Authorization: Bearer \(gateway.readToken)",
                    "\(gateway.admin)/api/v1/cache",
                ])
            if status == 0 && body.hasPrefix("[") { answered += 1 }
        }
        #expect(answered == 5, "the admin API answered \(answered) of 5 requests during the flood")
        flood.wait(timeout: 30)
        let metrics = try runProgram("/usr/bin/curl", ["-s", "\(gateway.admin)/metrics"]).1
        let shed = Self.metric(metrics, "otamesh_connections_shed_total{listener=\"admin\"}") ?? 0
        #expect(shed > 100, "admin connections shed: \(shed)")
        #expect(gateway.child.process.isRunning)
    }
}
