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
}
