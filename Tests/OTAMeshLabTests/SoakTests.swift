import Testing

@testable import OTAMeshLab

@Suite("soak plan and invariants")
struct SoakTests {
    static let gateways = (1...32).map { String(format: "gw%02d", $0) }
    static func inputs(_ seconds: Double) -> SoakPlan.Inputs {
        SoakPlan.Inputs(
            seconds: seconds, gateways: gateways, network: "backbone", baselineLoss: 1, deviceGroups: ["f1", "f2", "f3", "f4"],
            targets: ["esp32/app/2.0.0.bin", "esp32/app/3.0.0.bin"], diskGateway: "gw32")
    }

    @Test("the same seed gives the same schedule; another seed another")
    func seeded() {
        #expect(SoakPlan(Self.inputs(600), seed: 7) == SoakPlan(Self.inputs(600), seed: 7))
        #expect(SoakPlan(Self.inputs(600), seed: 7).events != SoakPlan(Self.inputs(600), seed: 8).events)
    }

    @Test("every kind of fault occurs in an hour, each undone before the quiet tail", arguments: [1 as UInt64, 2, 3])
    func faultsEndBeforeTheTail(seed: UInt64) {
        let plan = SoakPlan(Self.inputs(3600), seed: seed)
        let counts = plan.counts
        for kind in ["kills", "partitions", "loss changes", "disk fills", "device faults", "rollouts", "halts"] {
            #expect((counts[kind] ?? 0) > 0, "no \(kind) in \(counts)")
        }
        #expect(counts["kills"] == counts["restarts"] && counts["partitions"] == counts["heals"])
        #expect(counts["disk fills"] == counts["disk frees"] && counts["device faults"] == counts["device restores"])
        #expect(plan.quietFrom == 3600 - 180)
        #expect(plan.events.allSatisfy { $0.at <= plan.quietFrom })
        #expect(zip(plan.events, plan.events.dropFirst()).allSatisfy { $0.at <= $1.at }, "in time order")
    }

    @Test("at most an eighth of the gateways are down at once, one partition at a time, each a minority")
    func bounded() {
        for seed in 1...20 as ClosedRange<UInt64> {
            let plan = SoakPlan(Self.inputs(1800), seed: seed)
            var down: Set<String> = []
            var partitioned = false
            var lossOn = false
            for event in plan.events {
                switch event.action {
                case .kill(let gateway):
                    #expect(!down.contains(gateway))
                    down.insert(gateway)
                    #expect(down.count <= 4, "seed \(seed): \(down.sorted()) down at \(event.at)")
                case .restart(let gateway): down.remove(gateway)
                case .partition(let minority):
                    #expect(!partitioned, "seed \(seed): a second partition at \(event.at)")
                    #expect(!minority.isEmpty && minority.count < 16)
                    partitioned = true
                case .heal: partitioned = false
                case .loss(_, let percent):
                    if percent > 1 { #expect((10...30).contains(percent)); #expect(!lossOn); lossOn = true } else { lossOn = false }
                default: break
                }
            }
            #expect(down.isEmpty && !partitioned && !lossOn, "seed \(seed): everything is undone by the end")
        }
    }

    @Test("a minority may show what was decided before the cut, nothing new")
    func minority() {
        #expect(SoakLedger.minorityAdvanced(atPartition: ["s1": 1, "s2": 0], now: ["s1": 1, "s2": 0]).isEmpty)
        #expect(SoakLedger.minorityAdvanced(atPartition: ["s1": 1], now: ["s1": 2]) == ["s1"])
        #expect(SoakLedger.minorityAdvanced(atPartition: [:], now: ["s3": 0]) == ["s3"], "a rollout started while cut off is new")
    }

    @Test("a minority cut off once a stage had soaked may take the next stage (the evidence may have reached it); cut off before, it may not")
    func minorityLimit() {
        let limit = SoakLedger.minorityLimit(highest: ["s1": 0, "s2": 1, "s3": 2], dueAt: ["s1": 100, "s2": 200], cutComplete: 150)
        #expect(limit == ["s1": 1, "s2": 1, "s3": 2], "s1 had soaked at 100, before the cut was complete at 150; s2 was due at 200; s3 is on its last stage")
        #expect(SoakLedger.minorityAdvanced(atPartition: limit, now: ["s1": 1, "s2": 2, "s3": 2]) == ["s2"])
    }

    @Test("RSS that keeps rising after warm-up is a leak; a step at start-up is not")
    func leaks() {
        func series(_ rss: (Int) -> Int) -> SoakLedger.Samples {
            var samples = SoakLedger.Samples()
            for i in 0..<60 { samples.points.append((Double(i * 10), rss(i), 40)) }
            return samples
        }
        #expect(SoakLedger.rssGrowth(series { $0 < 10 ? 40_000 + $0 * 3_000 : 70_000 + $0 % 3 * 500 })?.flat == true)
        #expect(SoakLedger.rssGrowth(series { 60_000 + $0 * 1_000 })?.flat == false, "+1 MiB every 10 s")
        #expect(SoakLedger.rssGrowth(SoakLedger.Samples()) == nil, "too short to judge")
        var fds = series { _ in 60_000 }
        #expect(SoakLedger.fdsBounded(fds, limit: 1024)?.flat == true)
        for i in 30..<60 { fds.points[i].fds = 40 + (i - 29) * 5 }
        #expect(SoakLedger.fdsBounded(fds, limit: 1024)?.flat == false, "descriptors piling up")
    }

    @Test("the table names every invariant with its checks and violations")
    func table() {
        var ledger = SoakLedger()
        ledger.check(.storeVerifies, true, "")
        ledger.check(.nothingLost, false, "gw07: 1 committed blobs gone after SIGKILL")
        let table = ledger.table()
        #expect(table.count == 2 + SoakLedger.Invariant.allCases.count + 1)
        #expect(table.contains("| after every SIGKILL nothing committed is lost | 1 | 1 |"))
        #expect(table.last == "- after every SIGKILL nothing committed is lost: gw07: 1 committed blobs gone after SIGKILL")
        #expect(!ledger.passed)
    }

    @Test("the soak topology parses: 32 gateways, devices, two releases")
    func topology() throws {
        let topology = try TopologyFile.load(path: "\(topologiesDirectory)/soak-campus-32.yaml")
        #expect(topology.gateways.count == 32 && topology.devices.reduce(0) { $0 + $1.count } == 16)
        #expect(topology.origin?.releases.count == 2)
    }
}
