import Foundation
import OTAMeshDiscovery
import OTAMeshTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real avahi-daemons in private network namespaces (root only; see AvahiLab). Serialized:
/// two labs at once would only compete for the machine's two cores.
@Suite("mDNS discovery lab", .serialized)
struct DiscoveryLabTests {
    static let site = "lab-site"
    static let siteHash = DiscoveryAdvert.siteHash(of: site)

    @Test(
        "two gateways of one site find each other; a third site's gateway is seen and ignored",
        .enabled(if: AvahiLab.unavailableReason == nil, "needs root, ip netns, avahi-daemon, dbus and the otamesh-mdns-probe build"))
    func discovery() throws {
        let directory = try TemporaryDirectory()
        let lab = try AvahiLab.up(directory.path, ["A", "B", "C"])
        var probes: [Child] = []
        defer {
            for probe in probes { probe.signal(SIGTERM); probe.wait(timeout: 10) }
            lab.down()
            _ = directory  // removed only after the lab is down
        }
        let a = try lab.probe(on: "A", node: "gw-a", site: Self.site, gossipPort: 7946, httpPort: 8080)
        probes.append(a)
        let b = try lab.probe(on: "B", node: "gw-b", site: Self.site, gossipPort: 7947, httpPort: 8081)
        probes.append(b)
        let c = try lab.probe(on: "C", node: "gw-c", site: "another-site", gossipPort: 7948, httpPort: 8082)
        probes.append(c)

        let met = waitUntil(timeout: 30) {
            AvahiLab.peers(a).contains { $0.nodeName == "gw-b" } && AvahiLab.peers(b).contains { $0.nodeName == "gw-a" }
        }
        // Each must also have resolved the other site's advert (and its own) and ignored them;
        // its own advert may come back after the others, so wait for that too.
        let screened = waitUntil(timeout: 30) {
            [a, b].allSatisfy { $0.stderr.text.contains("mdns.instance=gw-c mdns.reason=another site") }
                && c.stderr.text.contains("mdns.instance=gw-a mdns.reason=another site")
                && c.stderr.text.contains("mdns.instance=gw-b mdns.reason=another site")
                && [a, b, c].allSatisfy { $0.stderr.text.contains("mdns.reason=this node's own name") }
        }
        let context = "A:\n\(a.stdout.text)\(a.stderr.text)\nB:\n\(b.stdout.text)\(b.stderr.text)\nC:\n\(c.stderr.text)\n\(lab.logs())"
        try #require(met, "\(context)")
        #expect(screened, "\(context)")

        #expect(
            Set(AvahiLab.peers(a)) == [
                DiscoveredPeer(
                    nodeName: "gw-b", addresses: ["10.250.0.12"], gossipPort: 7947,
                    httpPort: 8081, protocolVersion: 1, siteHash: Self.siteHash)
            ], "\(context)")
        #expect(
            Set(AvahiLab.peers(b)) == [
                DiscoveredPeer(
                    nodeName: "gw-a", addresses: ["10.250.0.11"], gossipPort: 7946,
                    httpPort: 8080, protocolVersion: 1, siteHash: Self.siteHash)
            ], "\(context)")
        #expect(AvahiLab.peers(c).isEmpty, "\(context)")
        for probe in [a, b, c] {
            #expect(probe.stderr.text.contains("mdns.reason=this node's own name"), "\(context)")
            #expect(!probe.stderr.text.contains("mDNS unavailable"), "\(context)")
        }

        // avahi's own browser sees the three adverts with their TXT keys.
        // make deps installs avahi-utils and python3-zeroconf: the cross-checks are part of the test.
        try #require(AvahiLab.which("avahi-browse") != nil, "avahi-browse is missing (make deps installs avahi-utils)")
        let (status, listing, err) = try lab.run(on: "C", ["avahi-browse", "--resolve", "--parsable", "--terminate", MDNSDiscovery.serviceType])
        #expect(status == 0, "\(err)")
        let resolved = listing.split(separator: "\n").filter { $0.hasPrefix("=;") }
        for (node, address, gossip, http) in [("gw-a", "10.250.0.11", 7946, 8080), ("gw-b", "10.250.0.12", 7947, 8081)] {
            let line = resolved.first { $0.split(separator: ";").dropFirst(3).first == Substring(node) }
            #expect(line != nil, "\(listing)")
            for item in [
                "\"id=\(node)\"", "\"v=1\"", "\"site=\(Self.siteHash)\"", "\"gp=\(gossip)\"", "\"hp=\(http)\"", "\"addr=\(address)\"",
                ";\(address);\(gossip);",
            ] {
                #expect(line?.contains(item) == true, "\(item) in \(line ?? "")")
            }
        }
        #expect(resolved.contains { $0.contains("\"id=gw-c\"") && $0.contains("\"site=\(DiscoveryAdvert.siteHash(of: "another-site"))\"") })
        #expect(!listing.contains(Self.site), "the site ID itself is never advertised")

        // python-zeroconf, an mDNS stack that is not Avahi, resolves the same adverts.
        let script = "\(AvahiLab.packageRoot)/Tests/Fixtures/lab/zeroconf-browse.py"
        let (zstatus, zout, zerr) = try lab.run(on: "C", ["python3", script, "10.250.0.13", "15", "3"], timeout: 40)
        try #require(!zerr.contains("No module named 'zeroconf'"), "python-zeroconf is missing (make deps installs it)")
        #expect(zstatus == 0, "\(zerr)")
        let browsed = (try? JSONSerialization.jsonObject(with: Data(zout.utf8))) as? [String: [String: Any]] ?? [:]
        for (node, address, gossip) in [("gw-a", "10.250.0.11", 7946), ("gw-b", "10.250.0.12", 7947)] {
            let entry = browsed.first { $0.key.hasPrefix("\(node).") }?.value
            let txt = entry?["txt"] as? [String: String]
            #expect(
                entry?["port"] as? Int == gossip && txt?["id"] == node && txt?["addr"] == address && txt?["site"] == Self.siteHash,
                "\(node) in \(zout) \(zerr)")
        }
    }

    @Test(
        "avahi-daemon stopped (TERM) or crashing (KILL) under a running node: one warning, then rediscovery",
        .enabled(if: AvahiLab.unavailableReason == nil, "needs root, ip netns, avahi-daemon, dbus and the otamesh-mdns-probe build"),
        arguments: ["TERM", "KILL"])
    func daemonRestart(signal: String) throws {
        let directory = try TemporaryDirectory()
        let lab = try AvahiLab.up(directory.path, ["A", "B"])
        var probes: [Child] = []
        defer {
            for probe in probes { probe.signal(SIGTERM); probe.wait(timeout: 10) }
            lab.down()
            _ = directory
        }
        let a = try lab.probe(on: "A", node: "gw-a", site: Self.site, gossipPort: 7946, httpPort: 8080)
        probes.append(a)
        let b = try lab.probe(on: "B", node: "gw-b", site: Self.site, gossipPort: 7947, httpPort: 8081)
        probes.append(b)
        func context() -> String { "A:\n\(a.stdout.text)\(a.stderr.text)\nB:\n\(b.stdout.text)\(b.stderr.text)\n\(lab.logs())" }

        try #require(
            waitUntil(timeout: 30) {
                AvahiLab.peers(a).count == 1 && AvahiLab.peers(b).count == 1
            }, "\(context())")

        try lab.stopAvahi("A", signal: signal)
        try #require(waitUntil(timeout: 15) { a.stderr.text.contains("mDNS unavailable") }, "\(context())")
        // Stay down across several retries (1 s, 2 s …) before coming back.
        try #require(waitUntil(timeout: 15) { a.stderr.text.contains("mDNS still unavailable") }, "\(context())")
        try lab.startAvahi("A")

        // After a clean stop B saw A's goodbye, so A comes back as new to B as well; after a
        // crash B's cache still holds A and B reports nothing new.
        let back = waitUntil(timeout: 60) {
            a.stderr.text.contains("mDNS available again") && AvahiLab.peers(a).count == 2
                && (signal == "KILL" || AvahiLab.peers(b).count == 2)
        }
        #expect(back, "\(context())")
        #expect(AvahiLab.count("mDNS unavailable", in: a.stderr.text) == 1, "\(context())")
        #expect(AvahiLab.count("warning", in: a.stderr.text) == 1, "\(context())")
        #expect(AvahiLab.peers(a).allSatisfy { $0.nodeName == "gw-b" && $0.addresses == ["10.250.0.12"] && $0.gossipPort == 7947 })
        #expect(AvahiLab.peers(b).allSatisfy { $0.nodeName == "gw-a" && $0.addresses == ["10.250.0.11"] && $0.gossipPort == 7946 })
        #expect(!b.stderr.text.contains("mDNS unavailable"), "B's daemon never went away")
    }
}
