import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

/// A gateway that leaves says so itself; one that stops answering is declared dead by others.
/// Members tell the two apart (`left`), and a gateway with another site key is reported once.
@Suite("leave and key mismatch")
struct LeaveTests {
    static let a = NodeAddress(name: "gw-a", ip: [10, 0, 0, 1], port: 7946)
    static let b = NodeAddress(name: "gw-b", ip: [10, 0, 0, 2], port: 7946)

    static func knowingB() -> SWIM<SplitMix64> {
        var swim = SWIM(me: a, random: SplitMix64(seed: 1))
        _ = swim.receive([.alive(node: b, incarnation: 1, metadata: [])], now: 0)
        return swim
    }

    @Test("a member's own dead is a leave (left); another's dead about it is a failure; its return clears left")
    func leftVersusFailed() {
        var swim = Self.knowingB()
        _ = swim.receive([.dead(node: "gw-b", incarnation: 1, from: "gw-b")], now: 1)
        #expect(swim.members["gw-b"]?.status == .dead && swim.members["gw-b"]?.left == true)
        // Passed on in full state as its own leave, so a peer learns "left" too.
        #expect(swim.stateMessages().contains(.dead(node: "gw-b", incarnation: 1, from: "gw-b")))
        var peer = SWIM(me: NodeAddress(name: "gw-c", ip: [10, 0, 0, 3], port: 7946), random: SplitMix64(seed: 2))
        _ = peer.receive([.alive(node: Self.b, incarnation: 1, metadata: [])], now: 0)
        peer.mergeState(swim.stateMessages(), now: 1)
        #expect(peer.members["gw-b"]?.left == true)
        // Back with a higher incarnation: alive, no longer left.
        _ = swim.receive([.alive(node: Self.b, incarnation: 2, metadata: [])], now: 2)
        #expect(swim.members["gw-b"]?.status == .alive && swim.members["gw-b"]?.left == false)

        var failed = Self.knowingB()
        _ = failed.receive([.dead(node: "gw-b", incarnation: 1, from: "gw-x")], now: 1)
        #expect(failed.members["gw-b"]?.status == .dead && failed.members["gw-b"]?.left == false)
    }

    @Test("another site key: each address reported once, and no more than the limit")
    func reportsOnce() {
        var reports = KeyMismatchReports(limit: 2)
        let noted = ["10.0.0.2:7946", "10.0.0.2:7946", "10.0.0.3", "10.0.0.4"].map { reports.note($0) }
        // Once each; past the limit nothing new is reported.
        #expect(noted == [true, false, true, false])
        #expect(reports.contains("10.0.0.3") && !reports.contains("10.0.0.4"))
        #expect(KeyMismatchReports.warning(address: "10.0.0.2:7946").hasPrefix("a gateway at 10.0.0.2:7946 uses another site key: copy the site's keyring"))
    }
}
