import Foundation
import OTAMeshCommon
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real agents gossiping on loopback ports (static joins; mDNS is covered by the lab tests):
/// membership, failure detection, peer fetch, and the site key as the door.
@Suite("mesh on loopback", .serialized)
struct MeshTests {
    static let fixtures = BundleTests.fixtures

    /// A published release repository served over HTTP, and a site keyring.
    struct Site {
        let dir: TemporaryDirectory
        let repository: PublishedRelease
        let server: TUFCLITests.StaticServer
        let keyring: String

        var root: String { repository.root }
        var upstream: [String] {
            [
                "--trust-root", root, "--upstream-metadata-url", "\(server.url)/metadata", "--upstream-targets-url", "\(server.url)/targets",
                "--upstream-interval", "1s",
            ]
        }

        func release(_ path: String, _ image: String) throws {
            try repository.release(PublishedRelease.Image(path: path, file: image))
        }
    }

    static func site() throws -> Site {
        let dir = try TemporaryDirectory()
        let repository = try PublishedRelease(
            in: dir,
            images: [
                PublishedRelease.Image(path: "esp32/app/1.0.0.bin", file: "\(fixtures)/esp/esp32s3.bin"),
                PublishedRelease.Image(path: "w800/app.img", file: "\(fixtures)/wm/w800_app_ota.img"),
            ], publishedAs: "site")
        let keyring = dir.file("site.keyring")
        try writeSiteKeyring(to: keyring, site: "test-site")
        return Site(dir: dir, repository: repository, server: try TUFCLITests.StaticServer(directory: repository.published), keyring: keyring)
    }

    /// `otamesh members --json` of a gateway, decoded loosely.
    static func members(_ gateway: Gateway) -> [String: [String: Any]] {
        guard let (status, out, _) = try? run(["members", "--admin", gateway.admin, "--json"] + gateway.tokenArguments, timeout: 10), status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
            let list = object["members"] as? [[String: Any]]
        else { return [:] }
        return Dictionary(list.compactMap { member in (member["name"] as? String).map { ($0, member) } }, uniquingKeysWith: { a, _ in a })
    }

    static func status(_ gateway: Gateway, of name: String) -> String? { members(gateway)[name]?["status"] as? String }

    static func images(_ data: String) -> String { (try? run(["images", "--data-dir", data]).1) ?? "" }

    @Test(
        "gateways joined through static peers all see each other; a SIGKILLed one is declared failed, rejoins when restarted, and shows as left after SIGTERM")
    func membershipAndFailure() throws {
        let site = try Self.site()
        let a = try Gateway.start(data: site.dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", site.keyring])
        defer { a.stop() }
        let b = try Gateway.start(data: site.dir.file("b"), extra: ["--node-name", "gw-b", "--site-keyring", site.keyring, "--join", a.gossip!])
        defer { b.stop() }
        // gw-c knows only gw-b: it learns of gw-a through gossip.
        var c = try Gateway.start(data: site.dir.file("c"), extra: ["--node-name", "gw-c", "--site-keyring", site.keyring, "--join", b.gossip!])
        defer { c.stop() }
        let all = [("gw-a", a), ("gw-b", b)]
        #expect(
            waitUntil(timeout: 20) {
                all.allSatisfy { name, gateway in Set(Self.members(gateway).keys) == Set(["gw-a", "gw-b", "gw-c"]).subtracting([name]) }
                    && Self.members(c).count == 2 && Self.members(c).values.allSatisfy { $0["status"] as? String == "alive" }
            }, "a: \(Self.members(a)) c: \(Self.members(c))")
        let (_, table, _) = try run(["members", "--admin", c.admin] + c.tokenArguments)
        #expect(table.contains("gw-c (this gateway)") && table.contains("gw-a  alive") && table.contains("site test-site"), "\(table)")

        // SIGKILL: no goodbye. Suspicion (≥ 4 s with 3 nodes) then failure, at both survivors.
        c.child.signal(SIGKILL)
        c.child.wait()
        let killed = Date()
        #expect(waitUntil(timeout: 40) { Self.status(a, of: "gw-c") == "failed" && Self.status(b, of: "gw-c") == "failed" })
        let detection = Date().timeIntervalSince(killed)
        #expect(detection < 30, "detected after \(detection) s")
        #expect(Self.status(a, of: "gw-b") == "alive")

        // Restarted on another port, it refutes its death and is alive everywhere again.
        c = try Gateway.start(data: site.dir.file("c"), extra: ["--node-name", "gw-c", "--site-keyring", site.keyring, "--join", a.gossip!])
        #expect(waitUntil(timeout: 20) { Self.status(a, of: "gw-c") == "alive" && Self.status(b, of: "gw-c") == "alive" })
        let address = Self.members(a)["gw-c"]?["address"] as? String
        #expect(address == c.gossip, "\(address ?? "-") vs \(c.gossip ?? "-")")

        // A graceful stop says goodbye: left (not failed) at once, no suspicion period.
        c.stop()
        #expect(
            waitUntil(timeout: 3) { Self.status(a, of: "gw-c") == "left" && Self.status(b, of: "gw-c") == "left" },
            "a: \(Self.members(a)) b: \(Self.members(b))")
        let (_, after, _) = try run(["members", "--admin", a.admin] + a.tokenArguments)
        #expect(after.contains("gw-c  left"), "\(after)")
        // Its SIGKILL above was a failure; this leave is not another.
        #expect(waitUntil(timeout: 3) { a.child.stderr.text.contains("gossip member left") })
        #expect(a.child.stderr.text.components(separatedBy: "gossip member failed").count == 2, "\(a.child.stderr.text)")
    }

    @Test("a gateway without a trust root says so in its banner, takes nothing from peers and logs the hint once, not per round")
    func noTrustRoot() throws {
        let site = try Self.site()
        let a = try Gateway.start(data: site.dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", site.keyring] + site.upstream)
        defer { a.stop() }
        let b = try Gateway.start(data: site.dir.file("b"), extra: ["--node-name", "gw-b", "--site-keyring", site.keyring, "--join", a.gossip!])
        defer { b.stop() }
        #expect(b.child.stdout.text.contains("  trust root: none") && !a.child.stdout.text.contains("trust root: none"), "\(b.child.stdout.text)")
        let hint = "no trusted TUF root: this gateway takes no signed metadata or images from its peers"
        #expect(waitUntil(timeout: 20) { Self.status(b, of: "gw-a") == "alive" && b.child.stderr.text.contains(hint) }, "\(b.child.stderr.text)")
        // Peer sync rounds run every 2 s: over three of them, no second hint, no refused refresh.
        #expect(!waitUntil(timeout: 6) { b.child.stderr.text.components(separatedBy: hint).count > 2 })
        #expect(!b.child.stderr.text.contains("signed metadata from a peer refused"), "\(b.child.stderr.text)")
        #expect(Self.images(site.dir.file("b")).components(separatedBy: "  cached\n").count == 1)
    }

    @Test("gateways without upstream get every released image and each new release from their peers, verified")
    func peerFetch() async throws {
        let site = try Self.site()
        let a = try Gateway.start(data: site.dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", site.keyring] + site.upstream)
        defer { a.stop() }
        let b = try Gateway.start(
            data: site.dir.file("b"),
            extra: [
                "--node-name", "gw-b", "--site-keyring", site.keyring, "--trust-root", site.root,
                "--join", a.gossip!,
            ])
        defer { b.stop() }
        // gw-c reaches only gw-b, which has no upstream either: images travel two hops.
        let c = try Gateway.start(
            data: site.dir.file("c"),
            extra: [
                "--node-name", "gw-c", "--site-keyring", site.keyring, "--trust-root", site.root,
                "--join", b.gossip!,
            ])
        defer { c.stop() }
        func cached(_ data: String) -> Int { Self.images(data).components(separatedBy: "  cached\n").count - 1 }
        #expect(
            waitUntil(timeout: 40) { cached(site.dir.file("b")) == 2 && cached(site.dir.file("c")) == 2 },
            "b: \(Self.images(site.dir.file("b"))) c: \(Self.images(site.dir.file("c")))")
        #expect(b.child.stdout.text.isEmpty == false)
        #expect(b.child.stderr.text.contains("image fetched from a peer") && b.child.stderr.text.contains("signed metadata refreshed from a peer"))

        // A new release reaches the upstream gateway, then both peers.
        try site.release("esp32/app/2.0.0.bin", "\(Self.fixtures)/esp/esp32c6.bin")
        #expect(waitUntil(timeout: 40) { cached(site.dir.file("c")) == 3 }, "\(Self.images(site.dir.file("c")))")
        #expect(Self.images(site.dir.file("c")).contains("esp32/app/2.0.0.bin  3.0.0-rc.1+build.42  esp32c6  esp32-app"))
        // gw-c serves the release to its devices, byte for byte.
        let served = site.dir.file("served.bin")
        #expect(
            waitUntil(timeout: 10) {
                (try? runProgram("/usr/bin/curl", ["-sf", "-o", served, "\(c.device)/v1/targets/esp32/app/2.0.0.bin"]).0) == 0
            })
        #expect(FileManager.default.contents(atPath: served) == FileManager.default.contents(atPath: "\(Self.fixtures)/esp/esp32c6.bin"))
        let (_, metrics) = try await AgentTests.get("\(c.admin)/metrics")
        #expect(metrics.contains("otamesh_peer_fetches_total{result=\"ok\"} 3"), "\(metrics)")
        // Everyone learns what gw-c holds.
        #expect(waitUntil(timeout: 10) { (Self.members(a)["gw-c"]?["images"] as? [String])?.count == 3 })
    }

    @Test("a gateway with another site's key never joins; its packets and garbage are dropped and counted; nothing crashes")
    func wrongKey() async throws {
        let site = try Self.site()
        let other = site.dir.file("other.keyring")
        #expect(try run(["keys", "site-keyring", "--out", other, "--site", "test-site"]).0 == 0)
        let a = try Gateway.start(data: site.dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", site.keyring])
        defer { a.stop() }
        let intruder = try Gateway.start(data: site.dir.file("x"), extra: ["--node-name", "gw-x", "--site-keyring", other, "--join", a.gossip!])
        defer { intruder.stop() }
        // Garbage at the gossip port: random datagrams and a stream of junk.
        let port = UInt16(a.gossip!.split(separator: ":").last!)!
        var random = SplitMix64(seed: 5)
        for size in [0, 1, 28, 29, 30, 100, 1_400, 9_000] {
            sendUDP(port: port, bytes: (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        }
        _ = try? runProgram("/bin/bash", ["-c", "head -c 300000 /dev/urandom > /dev/tcp/127.0.0.1/\(port)"], timeout: 10)
        // A legitimate member still joins while the intruder keeps knocking.
        let b = try Gateway.start(data: site.dir.file("b"), extra: ["--node-name", "gw-b", "--site-keyring", site.keyring, "--join", a.gossip!])
        defer { b.stop() }
        #expect(waitUntil(timeout: 20) { Self.status(a, of: "gw-b") == "alive" })
        #expect(
            waitUntil(timeout: 10) {
                let metrics = (try? runProgram("/usr/bin/curl", ["-s", "\(a.admin)/metrics"]).1) ?? ""
                return metrics.contains("otamesh_gossip_dropped_total{reason=\"unauthenticated\"}")
                    && metrics.contains("otamesh_gossip_dropped_total{reason=\"too_short\"}")
            })
        #expect(Self.members(a)["gw-x"] == nil && Self.members(b)["gw-x"] == nil)
        #expect(Self.members(intruder).isEmpty)
        #expect(a.child.process.isRunning && intruder.child.process.isRunning)
        // Both sides say what is wrong, once, and not as "no answer yet".
        let warning = "uses another site key: copy the site's keyring"
        #expect(
            waitUntil(timeout: 10) {
                a.child.stderr.text.contains("a gateway at 127.0.0.1 \(warning)") && intruder.child.stderr.text.contains("a gateway at \(a.gossip!) \(warning)")
            }, "a: \(a.child.stderr.text)\nx: \(intruder.child.stderr.text)")
        #expect(a.child.stderr.text.components(separatedBy: "a gateway at 127.0.0.1 \(warning)").count == 2, "\(a.child.stderr.text)")
        #expect(intruder.child.stderr.text.components(separatedBy: warning).count == 2, "\(intruder.child.stderr.text)")
        #expect(!intruder.child.stderr.text.contains("no answer yet"), "\(intruder.child.stderr.text)")
        let metrics = (try? runProgram("/usr/bin/curl", ["-s", "\(intruder.admin)/metrics"]).1) ?? ""
        #expect(metrics.contains("otamesh_gossip_key_mismatch_peers_total 1"), "\(metrics)")
    }

    func sendUDP(port: UInt16, bytes: [UInt8]) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

extension MeshTests {
    @Test("otamesh keys rotate-site moves every running gateway to a new key without a partition; the old key no longer joins")
    func rotateSite() throws {
        let site = try Self.site()
        // Each gateway has its own copy of the keyring file, as on real hosts.
        var gateways: [Gateway] = []
        defer { for gateway in gateways { gateway.stop() } }
        for name in ["a", "b", "c"] {
            let keyring = site.dir.file("\(name).keyring")
            try FileManager.default.copyItem(atPath: site.keyring, toPath: keyring)
            let join = gateways.first.map { ["--join", $0.gossip!] } ?? []
            gateways.append(try Gateway.start(data: site.dir.file(name), extra: ["--node-name", "gw-\(name)", "--site-keyring", keyring] + join))
        }
        let (a, b, c) = (gateways[0], gateways[1], gateways[2])
        #expect(waitUntil(timeout: 20) { [a, b, c].allSatisfy { g in Self.members(g).values.filter { $0["status"] as? String == "alive" }.count == 2 } })
        let (status, out, err) = try run(["keys", "rotate-site", "--admin", b.admin, "--timeout", "60s"] + b.tokenArguments, timeout: 90)
        #expect(status == 0, "\(out) \(err)")
        #expect(out.contains("done: every live gateway uses only key"), "\(out)")
        let key = String(out.split(separator: "\n").first!.split(separator: " ")[3])
        // Every file on disk now holds only the new key; nobody was ever declared failed.
        for name in ["a", "b", "c"] {
            let (_, shown, _) = try run(["keys", "site-keyring", "--show", site.dir.file("\(name).keyring")])
            #expect(shown.contains("key \(key)  (primary)") && shown.components(separatedBy: "  key ").count == 2, "\(name): \(shown)")
        }
        for gateway in [a, b, c] {
            #expect(!gateway.child.stderr.text.contains("gossip member failed"), "\(gateway.child.stderr.text)")
        }
        // A gateway still holding the old key cannot join any more.
        let stale = try Gateway.start(data: site.dir.file("d"), extra: ["--node-name", "gw-d", "--site-keyring", site.keyring, "--join", a.gossip!])
        defer { stale.stop() }
        #expect(!waitUntil(timeout: 5) { Self.members(a)["gw-d"] != nil })
    }
}
