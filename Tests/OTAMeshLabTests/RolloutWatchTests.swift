import Foundation
import OTAMeshRollout
import Testing

@testable import OTAMeshLab

@Suite("rollout watch")
struct RolloutWatchTests {
    /// A status as a gateway would answer it (decoded from its JSON, as the runner does).
    static func snapshot(mode: String, stage: Int = 0, halt: RolloutSnapshot.Halt? = nil, outcomes: [RolloutSnapshot.Outcome] = []) -> RolloutSnapshot {
        let encoder = JSONEncoder()
        let haltJSON = halt.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) } ?? "null"
        let outcomesJSON = (try? encoder.encode(outcomes)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        let json = """
            {"rollouts":[{"id":"r-0123456789ab","mode":"\(mode)","stage":\(stage),"approvals":2,"threshold":2,"lastSequence":1,"controls":[],"pending":[],
             "stages":[{"percent":1,"targeted":0,"succeeded":0,"failed":0,"inFlight":0},{"percent":100,"targeted":4,"succeeded":1,"failed":1,"inFlight":0}],
             "gateways":{},"halt":\(haltJSON),"finished":2,"failed":1,"outcomes":\(outcomesJSON)}]}
            """
        return RolloutSnapshot.decodeList(Data(json.utf8))!.first!
    }

    static func outcome(_ device: String, _ gateway: String, started: Int64, phase: String = "offered", detail: String = "") -> RolloutSnapshot.Outcome {
        RolloutSnapshot.Outcome(device: device, gateway: gateway, epoch: 1, phase: phase, started: started, updated: started, detail: detail)
    }

    @Test("the gateway's status JSON decodes, unknown fields ignored")
    func decodes() throws {
        let json = """
            {"rollouts":[{"id":"r-0123456789ab","mode":"halted","stage":0,"approvals":2,"threshold":2,"lastSequence":1,"controls":[],"pending":[],
             "stages":[{"percent":100,"targeted":4,"succeeded":1,"failed":1,"inFlight":0}],
             "gateways":{"gw1":{"targeted":4,"succeeded":1,"failed":1,"inFlight":0}},
             "halt":{"epoch":1,"at":1700000000000,"gateway":"gw2","reason":"1 devices failed"},
             "finished":2,"failed":1,
             "outcomes":[{"device":"d1","gateway":"gw2","epoch":1,"phase":"failed","started":1,"updated":2,"detail":"x"}]}]}
            """
        let list = try #require(RolloutSnapshot.decodeList(Data(json.utf8)))
        #expect(list.first?.halt?.gateway == "gw2" && list.first?.outcomes?.first?.phase == "failed")
        #expect(RolloutSnapshot.decodeList(Data("not json".utf8)) == nil)
    }

    @Test("plan and halt spread, and starts after a known halt")
    func spread() {
        var track = RolloutTrack(name: "r1", id: "r-0123456789ab", at: "gw1", target: "t", firstSent: 100, lastSent: 101)
        #expect(track.observe("gw1", Self.snapshot(mode: "awaiting approval"), at: 100.5).isEmpty)
        track.observeMissing("gw2", roundBegan: 101.25)
        #expect(track.observe("gw1", Self.snapshot(mode: "running"), at: 101.2) == [.planKnown(gateway: "gw1"), .stage(0, gateway: "gw1")])
        #expect(track.planSpread(["gw1", "gw2"]) == nil)
        #expect(track.observe("gw2", Self.snapshot(mode: "running", stage: 1), at: 101.5) == [.planKnown(gateway: "gw2"), .stage(1, gateway: "gw2")])
        #expect(abs(track.planSpread(["gw1", "gw2"])! - 0.5) < 1e-9)
        // gw2 did not list the rollout in the round that began at 101.25: at least 0.25 s.
        #expect(abs(track.planSpreadLowerBound(["gw1", "gw2"]) - 0.25) < 1e-9)

        let halt = RolloutSnapshot.Halt(epoch: 1, at: 110_000, gateway: "gw2", reason: "1 devices failed")
        let events = track.observe(
            "gw2",
            Self.snapshot(
                mode: "halted", stage: 1, halt: halt,
                outcomes: [
                    Self.outcome("d1", "gw2", started: 109_000, phase: "failed"),
                    Self.outcome("d2", "gw1", started: 110_100),
                    Self.outcome("d3", "gw1", started: 111_000, phase: "succeeded", detail: "already ran 3.0.0"),
                ]), at: 110.2)
        #expect(events == [.halt(halt), .haltKnown(gateway: "gw2")])
        // gw2 set the halt: it knew at the mark's own time; gw1 not yet.
        #expect(track.haltKnownTime("gw2") == 110)
        #expect(track.haltSpread(["gw1", "gw2"]) == nil)
        #expect(track.startsAfterHalt.isEmpty)
        _ = track.observe("gw1", Self.snapshot(mode: "running", stage: 1), at: 110.2, roundBegan: 110.1)
        _ = track.observe("gw1", Self.snapshot(mode: "halted", stage: 1, halt: halt, outcomes: [Self.outcome("d4", "gw1", started: 110_400)]), at: 110.3)
        #expect(abs(track.haltSpread(["gw1", "gw2"])!.last - 0.3) < 1e-9)
        #expect(abs(track.haltSpreadLowerBound(["gw1", "gw2"])! - 0.1) < 1e-9)
        #expect(LabRunner.bounds(0.1, 0.3) == "0.10–0.30 s" && LabRunner.bounds(0.3, 0.3) == "0.30 s")
        // d2 started before gw1 knew; d4 after (a violation); d3 was no update at all.
        #expect(track.startsAfterHalt.map(\.device) == ["d4"])
        #expect(track.updatesStarted == 3)
        // A resume sent before d4 started allows it.
        track.resumedAt = 110.45
        #expect(track.startsAfterHalt.map(\.device) == ["d4"])
        track.resumedAt = 110.39
        #expect(track.startsAfterHalt.isEmpty)
    }

    @Test("progress bars")
    func bars() {
        #expect(LabRunner.bar(.init(targeted: 4, succeeded: 2, failed: 1, inFlight: 1)) == "[##xx··]")
        #expect(LabRunner.bar(.init(targeted: 0, succeeded: 0, failed: 0, inFlight: 0)) == "[······]")
        #expect(LabRunner.bar(.init(targeted: 4, succeeded: 4, failed: 0, inFlight: 0)) == "[######]")
    }
}
