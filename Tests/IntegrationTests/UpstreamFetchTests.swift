import Foundation
import Testing

/// One upstream fetch per site (issue 22): gateways that all have the upstream download a new
/// image from it once; the others take it from the mesh.
extension MeshTests {
    /// gw-a, gw-b and gw-c, all with the site's upstream, b and c joined to a.
    static func upstreamGateways(_ site: Site) throws -> (Gateway, Gateway, Gateway) {
        let a = try Gateway.start(data: site.dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", site.keyring] + site.upstream)
        do {
            let b = try Gateway.start(
                data: site.dir.file("b"), extra: ["--node-name", "gw-b", "--site-keyring", site.keyring, "--join", a.gossip!] + site.upstream)
            do {
                let c = try Gateway.start(
                    data: site.dir.file("c"), extra: ["--node-name", "gw-c", "--site-keyring", site.keyring, "--join", a.gossip!] + site.upstream)
                return (a, b, c)
            } catch {
                b.stop()
                throw error
            }
        } catch {
            a.stop()
            throw error
        }
    }

    @Test("three upstream-connected gateways: a new release is downloaded from upstream by one of them, the others take it from the mesh")
    func oneUpstreamFetch() throws {
        let site = try Self.site()
        let (a, b, c) = try Self.upstreamGateways(site)
        defer { [a, b, c].forEach { $0.stop() } }
        let datas = ["a", "b", "c"].map { site.dir.file($0) }
        func cached(_ data: String) -> Int { Self.images(data).components(separatedBy: "  cached\n").count - 1 }
        // Everyone alive and known to have an upstream before the release appears.
        #expect(
            waitUntil(timeout: 30) {
                datas.allSatisfy { cached($0) == 2 }
                    && [a, b, c].allSatisfy { gateway in
                        Self.members(gateway).values.filter { $0["status"] as? String == "alive" && $0["upstream"] as? Bool == true }.count == 2
                    }
            }, "\(datas.map { Self.images($0) })")

        try site.release("esp32/app/2.0.0.bin", "\(Self.fixtures)/esp/esp32c6.bin")
        #expect(waitUntil(timeout: 60) { datas.allSatisfy { cached($0) == 3 } }, "\(datas.map { Self.images($0) })")
        let downloads = site.server.requests.filter { $0.hasPrefix("GET /targets/") && $0.hasSuffix("2.0.0.bin") }
        #expect(downloads.count == 1, "the upstream served the new image \(downloads.count) times: \(downloads)")
        let fromPeers = [a, b, c].filter { $0.child.stderr.text.contains("image fetched from a peer") }
        #expect(fromPeers.count >= 2, "the two others took it from the mesh")
    }

    @Test("the gateway that would fetch a new image for the site is gone: the next in rank fetches it, once, and the other takes it from the mesh")
    func upstreamFetcherGone() throws {
        let site = try Self.site()
        let (a, b, c) = try Self.upstreamGateways(site)
        defer { [a, b, c].forEach { $0.stop() } }
        #expect(waitUntil(timeout: 30) { [a, b].allSatisfy { Self.status($0, of: "gw-c") == "alive" } })
        // For esp32c6.bin (SHA-256 70dafadc…) the rank is gw-c, gw-b, gw-a: without gw-c leaving
        // the plan, gw-a and gw-b would wait for it (upstream.handover, 10 min) and time out here.
        c.child.signal(SIGKILL)
        #expect(waitUntil(timeout: 40) { [a, b].allSatisfy { ["failed", "suspect", "left"].contains(Self.status($0, of: "gw-c") ?? "") } })
        try site.release("esp32/app/2.0.0.bin", "\(Self.fixtures)/esp/esp32c6.bin")
        let datas = ["a", "b"].map { site.dir.file($0) }
        #expect(
            waitUntil(timeout: 60) {
                datas.allSatisfy {
                    Self.images($0).contains("esp32/app/2.0.0.bin  3.0.0-rc.1+build.42  esp32c6  esp32-app") && Self.images($0).contains("cached")
                }
            },
            "\(datas.map { Self.images($0) })")
        #expect(waitUntil(timeout: 30) { datas.allSatisfy { Self.images($0).components(separatedBy: "  cached\n").count - 1 == 3 } })
        let downloads = site.server.requests.filter { $0.hasPrefix("GET /targets/") && $0.hasSuffix("2.0.0.bin") }
        #expect(downloads.count == 1, "\(downloads)")
    }

    @Test("an image with signed pieces and two holders comes as verified pieces from both; the piece list route checks its size")
    func swarmFromTwoHolders() throws {
        let dir = try TemporaryDirectory()
        var random = SystemRandomNumberGenerator()
        FileManager.default.createFile(atPath: dir.file("big.bin"), contents: Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &random) }))
        let repository = try PublishedRelease(in: dir, images: [.init(path: "linux/big.bin", file: dir.file("big.bin"))], publishedAs: "site")
        let keyring = dir.file("site.keyring")
        try writeSiteKeyring(to: keyring, site: "test-site")
        let site = Site(dir: dir, repository: repository, server: try TUFCLITests.StaticServer(directory: repository.published), keyring: keyring)
        let a = try Gateway.start(data: dir.file("a"), extra: ["--node-name", "gw-a", "--site-keyring", keyring] + site.upstream)
        defer { a.stop() }
        let b = try Gateway.start(
            data: dir.file("b"), extra: ["--node-name", "gw-b", "--site-keyring", keyring, "--trust-root", site.root, "--join", a.gossip!])
        defer { b.stop() }
        func cached(_ data: String) -> Bool { Self.images(data).contains("linux/big.bin") && Self.images(data).contains("cached") }
        #expect(waitUntil(timeout: 40) { cached(dir.file("a")) && cached(dir.file("b")) }, "\(Self.images(dir.file("b")))")
        // gw-c trusts nothing until it knows both holders, so its first fetch sees both.
        let c = try Gateway.start(data: dir.file("c"), extra: ["--node-name", "gw-c", "--site-keyring", keyring, "--join", a.gossip!])
        defer { c.stop() }
        #expect(
            waitUntil(timeout: 30) {
                let members = Self.members(c)
                return ["gw-a", "gw-b"].allSatisfy { members[$0]?["status"] as? String == "alive" && (members[$0]?["images"] as? [String])?.isEmpty == false }
            })
        // A piece file left from an image no target wants any more.
        let stale = dir.file("c/swarm/\(String(repeating: "0", count: 64)).part")
        try FileManager.default.createDirectory(atPath: dir.file("c/swarm"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3]))
        let installed = try runProgram(
            "/usr/bin/curl", ["-s", "-H", "Authorization: Bearer \(c.token)", "--data-binary", "@\(site.root)", "\(c.admin)/api/v1/trust-root"])
        #expect(installed.1.contains("installed"), "\(installed)")
        #expect(waitUntil(timeout: 40) { cached(dir.file("c")) }, "\(c.child.stderr.text.suffix(3000))")
        // The log line follows the store's commit.
        var log = ""
        let logged = waitUntil(timeout: 10) {
            log = c.child.stderr.text
            return log.contains("image fetched from peers as pieces")
        }
        #expect(logged && log.contains("gw-a=") && log.contains("gw-b="), "\(log.suffix(3000))")
        let served = dir.file("served.bin")
        #expect(try runProgram("/usr/bin/curl", ["-sf", "-o", served, "\(c.device)/v1/targets/linux/big.bin"]).0 == 0)
        #expect(FileManager.default.contents(atPath: served) == FileManager.default.contents(atPath: dir.file("big.bin")))
        let digest = sha256Hex([UInt8](FileManager.default.contents(atPath: dir.file("big.bin")) ?? Data()))
        let bad = try runProgram("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(a.device)/v1/pieces/sha256/\(digest)?size=1000"]).1
        #expect(bad == "400")
        let list = try runProgram("/usr/bin/curl", ["-s", "-o", dir.file("list"), "-w", "%{http_code}", "\(a.device)/v1/pieces/sha256/\(digest)?size=262144"]).1
        #expect(list == "200" && FileManager.default.contents(atPath: dir.file("list"))?.count == 12 * 32)
        #expect(!FileManager.default.fileExists(atPath: dir.file("c/swarm/\(digest).part")), "the assembled file is gone once stored")
        #expect(!FileManager.default.fileExists(atPath: stale), "a partial no target wants is dropped")
    }
}
