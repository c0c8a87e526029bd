import OTAMeshRollout
import Testing

/// What the rollouts tell a device that can download ahead of the maintenance window, or be
/// told to stop (hawkBit DDI): `.prefetch` and `.cancel` answers, and a canceled attempt.
@Suite("rollout node: download ahead and cancelation")
struct DownloadAheadTests {
    typealias F = Fixture

    static let window = try! MaintenanceWindow(parsing: "22:00-04:00")
    /// Noon: outside the window.
    static let noon = F.now + 12 * F.hour
    static let night = F.now + 23 * F.hour

    static func request(_ id: String) -> RolloutNode.Request { NodeTests.request(id) }

    @Test("outside the window a selected device may download ahead: no attempt starts, nothing counts; inside it the attempt starts")
    func prefetch() {
        var node = NodeTests.node(F.plan(stages: [100], window: Self.window))
        let (ahead, directives) = node.request(Self.request("dev-1"), now: Self.noon, isReady: { _ in true })
        guard case .prefetch(let path, let rollout, let why) = ahead else {
            Issue.record("expected a prefetch: \(ahead)")
            return
        }
        #expect(path == F.target.path && rollout == F.rollout)
        #expect(why == "rollout \(F.rollout): outside the maintenance window 22:00-04:00 UTC")
        #expect(NodeTests.writes(directives).isEmpty, "no attempt is recorded before the window opens")
        #expect(node.state(F.rollout)?.outcomes["dev-1"] == nil)
        // A success report now (SWUpdate closes `update: skip` so) changes nothing.
        #expect(NodeTests.writes(node.reported(device: "dev-1", rollout: F.rollout, .succeeded, now: Self.noon + 1)).isEmpty)

        let (inWindow, started) = node.request(Self.request("dev-1"), now: Self.night, isReady: { _ in true })
        #expect(inWindow == .offer(path: F.target.path, rollout: F.rollout))
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase == .offered)
        #expect(!NodeTests.writes(started).isEmpty)
    }

    @Test("only the window may turn a wait into a download ahead: not a target this gateway lacks, nor a paused rollout")
    func prefetchOnlyForTheWindow() {
        var node = NodeTests.node(F.plan(stages: [100], window: Self.window))
        let (missing, _) = node.request(Self.request("dev-1"), now: Self.noon, isReady: { _ in false })
        guard case .hold(let why) = missing else {
            Issue.record("\(missing)")
            return
        }
        #expect(why.contains("not ready on this gateway"))
        _ = node.submit(F.control(.pause, 2, by: [F.a, F.b]).command!, rollout: F.rollout)
        let (paused, _) = node.request(Self.request("dev-1"), now: Self.noon, isReady: { _ in true })
        #expect(paused == .hold("rollout \(F.rollout): rollout paused"))
    }

    @Test("a halt cancels attempts not yet transferring and keeps them open; transferring ones go on; on resume the attempt is offered again")
    func haltCancels() throws {
        var node = NodeTests.node(F.plan(stages: [100], concurrency: 10))
        _ = node.request(Self.request("dev-1"), now: F.now, isReady: { _ in true })
        _ = node.request(Self.request("dev-2"), now: F.now, isReady: { _ in true })
        _ = node.reported(device: "dev-2", rollout: F.rollout, .progress(.downloading), now: F.now + 10)
        let halted = node.halt(F.rollout, reason: "bad batch", now: F.now + 20)
        #expect(halted != nil)

        let (first, _) = node.request(Self.request("dev-1"), now: F.now + 30, isReady: { _ in true })
        #expect(first == .cancel(path: F.target.path, rollout: F.rollout, why: "rollout \(F.rollout) halted: halted by an admin: bad batch"))
        let (second, _) = node.request(Self.request("dev-2"), now: F.now + 30, isReady: { _ in true })
        #expect(second == .offer(path: F.target.path, rollout: F.rollout), "a transfer in flight finishes")

        #expect(NodeTests.writes(node.reported(device: "dev-1", rollout: F.rollout, .canceled, now: F.now + 40)).isEmpty)
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase == .offered, "halted, a canceled attempt stays open for the resume")

        _ = node.submit(F.control(.resume, 2, by: [F.a, F.b]).command!, rollout: F.rollout)
        let (resumed, _) = node.request(Self.request("dev-1"), now: F.now + 50, isReady: { _ in true })
        #expect(resumed == .offer(path: F.target.path, rollout: F.rollout))
    }

    @Test("an abort cancels attempts not yet transferring, and the device's cancelation ends them as failed, not started")
    func abortEnds() throws {
        var node = NodeTests.node(F.plan(stages: [100], concurrency: 10))
        _ = node.request(Self.request("dev-1"), now: F.now, isReady: { _ in true })
        _ = node.submit(F.control(.abort, 2, by: [F.a, F.b]).command!, rollout: F.rollout)
        let (answer, _) = node.request(Self.request("dev-1"), now: F.now + 30, isReady: { _ in true })
        #expect(answer == .cancel(path: F.target.path, rollout: F.rollout, why: "rollout \(F.rollout) was aborted"))

        let records = NodeTests.writes(node.reported(device: "dev-1", rollout: F.rollout, .canceled, now: F.now + 40))
        let ended = try #require(node.state(F.rollout)?.outcomes["dev-1"])
        #expect(ended.phase == .failed && ended.detail == "canceled before it started: rollout aborted")
        #expect(records.count == 1)
        // Its record is final: the aborted rollout offers it nothing more (manual assignments apply).
        let (after, more) = node.request(Self.request("dev-1"), now: F.now + 50, isReady: { _ in true })
        #expect(after == .none && NodeTests.writes(more).isEmpty)
    }
}
