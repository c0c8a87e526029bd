import OTAMeshRollout
import OTAMeshTrust
import Testing

/// The push queue's limits: per gateway (all rollouts together), per segment, and fairness
/// across segments; the rollout's own concurrency still applies.
@Suite("push queue limits")
struct PushQueueTests {
    typealias F = Fixture

    static func view(concurrency: Int = 100) -> RolloutView {
        var state = F.approved(F.plan(stages: [100], concurrency: concurrency))
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        return F.view(state)
    }

    /// `count` devices in each of `segments`.
    static func candidates(_ segments: [String: Int]) -> [PushQueue.Candidate] {
        segments.keys.sorted().flatMap { segment in
            (0..<(segments[segment] ?? 0)).map { PushQueue.Candidate(facts: F.facts("\(segment)-dev-\($0)"), version: "1.0.0", segment: segment) }
        }
    }

    static func next(
        _ candidates: [PushQueue.Candidate], view: RolloutView = view(), outcomes: [String: DeviceOutcome] = [:],
        limits: PushQueue.Limits, running: [String: String] = [:]
    ) -> [PushQueue.Start] {
        PushQueue.next(view: view, candidates: candidates, outcomes: outcomes, now: F.now, gateway: "gw-1", limits: limits, running: running)
    }

    static func bySegment(_ starts: [PushQueue.Start], _ candidates: [PushQueue.Candidate]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for start in starts where start.push {
            if let segment = candidates.first(where: { $0.facts.id == start.device })?.segment { counts[segment, default: 0] += 1 }
        }
        return counts
    }

    @Test("per-segment cap: one segment with many devices starts at most maxPerSegment")
    func perSegment() {
        let candidates = Self.candidates(["10.0.1.0/24": 20])
        let starts = Self.next(candidates, limits: .init(maxConcurrent: 8, maxPerSegment: 4))
        #expect(starts.filter(\.push).count == 4)
    }

    @Test("gateway cap: many segments together start at most maxConcurrent")
    func gatewayCap() {
        let candidates = Self.candidates(["a": 5, "b": 5, "c": 5, "d": 5])
        let starts = Self.next(candidates, limits: .init(maxConcurrent: 6, maxPerSegment: 4))
        #expect(starts.filter(\.push).count == 6)
        let counts = Self.bySegment(starts, candidates)
        #expect(counts.values.allSatisfy { $0 <= 2 }, "segments take turns: \(counts)")
    }

    @Test("fairness: two segments with many devices each both progress, also when one was busy before")
    func fairness() {
        let candidates = Self.candidates(["10.0.1.0/24": 30, "10.0.2.0/24": 30])
        let starts = Self.next(candidates, limits: .init(maxConcurrent: 4, maxPerSegment: 4))
        #expect(Self.bySegment(starts, candidates) == ["10.0.1.0/24": 2, "10.0.2.0/24": 2])

        // Three pushes already running in the first segment: the free slots go to the second.
        let running = ["x1": "10.0.1.0/24", "x2": "10.0.1.0/24", "x3": "10.0.1.0/24"]
        let after = Self.next(candidates, limits: .init(maxConcurrent: 8, maxPerSegment: 4), running: running)
        #expect(Self.bySegment(after, candidates) == ["10.0.1.0/24": 1, "10.0.2.0/24": 4])
    }

    @Test("pushes in flight count: running ones of other rollouts and this rollout's unfinished attempts")
    func inFlightCounts() {
        let candidates = Self.candidates(["s": 10])
        let full = Self.next(candidates, limits: .init(maxConcurrent: 8, maxPerSegment: 4), running: ["o1": "s", "o2": "s", "o3": "s", "o4": "s"])
        #expect(full.filter(\.push).isEmpty, "the segment is full with another rollout's pushes")
        let gatewayFull = Self.next(candidates, limits: .init(maxConcurrent: 2, maxPerSegment: 4), running: ["o1": "t", "o2": "u"])
        #expect(gatewayFull.filter(\.push).isEmpty, "the gateway is full")

        let attempt = DeviceOutcome(epoch: 1, phase: .downloading, bucket: 0, gateway: "gw-1", started: F.now, updated: F.now)
        let outcomes = ["s-dev-0": attempt, "s-dev-1": attempt, "s-dev-2": attempt]
        let starts = Self.next(candidates, outcomes: outcomes, limits: .init(maxConcurrent: 8, maxPerSegment: 4))
        #expect(starts.filter(\.push).count == 1, "three of four segment slots are taken by this rollout's attempts")
    }

    @Test("a push whose image crossed (installing) frees its segment slot, but still counts against the rollout's concurrency")
    func installingFreesTheSlot() {
        let candidates = Self.candidates(["s": 10])
        let installing = DeviceOutcome(epoch: 1, phase: .installing, bucket: 0, gateway: "gw-1", started: F.now, updated: F.now)
        let outcomes = ["s-dev-0": installing, "s-dev-1": installing, "s-dev-2": installing, "s-dev-3": installing]
        let starts = Self.next(candidates, outcomes: outcomes, limits: .init(maxConcurrent: 8, maxPerSegment: 4))
        #expect(starts.filter(\.push).count == 4, "four rebooting devices leave all four transfer slots")
        let bounded = Self.next(candidates, view: Self.view(concurrency: 6), outcomes: outcomes, limits: .init(maxConcurrent: 8, maxPerSegment: 4))
        #expect(bounded.filter(\.push).count == 2, "the rollout allows 6 devices at once; 4 are still rebooting")
    }

    @Test("the rollout's own concurrency still applies: the smaller limit wins")
    func rolloutConcurrency() {
        let candidates = Self.candidates(["a": 10, "b": 10])
        let starts = Self.next(candidates, view: Self.view(concurrency: 3), limits: .init(maxConcurrent: 8, maxPerSegment: 4))
        #expect(starts.filter(\.push).count == 3)
        let unlimited = Self.next(candidates, view: Self.view(concurrency: 50), limits: .unlimited)
        #expect(unlimited.filter(\.push).count == 20)
    }

    @Test("devices already on the target are recorded, not pushed, and take no slot")
    func alreadyCurrent() {
        var candidates = Self.candidates(["s": 3])
        candidates[0].version = "2.0.0"
        let starts = Self.next(candidates, limits: .init(maxConcurrent: 8, maxPerSegment: 3))
        #expect(starts.filter(\.push).count == 2)
        #expect(starts.contains { $0.device == "s-dev-0" && !$0.push })
    }
}
