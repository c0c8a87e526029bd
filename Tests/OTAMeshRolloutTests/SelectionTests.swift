import OTAMeshRollout
import PropertyBased
import Testing

/// Every gateway must put a device in the same stage, the stages must hold the share of devices
/// they promise, and devices joining later must not reshuffle who already got the update.
@Suite("stage selection")
struct SelectionTests {
    @Test("the bucket is SHA-256(rollout ‖ device) as one big-endian integer mod 10000, the same every time")
    func knownVectors() {
        // printf 'r-0123456789abDEVICE' | sha256sum
        //   c83b7b111d237228c40a1e18b477b8747b6c0d6a956e8242e6560a7aa0a6cc31, mod 10000 = 8033
        #expect(StageSelection.bucket(rollout: "r-0123456789ab", device: "DEVICE") == 8033)
        #expect(StageSelection.bucket(rollout: "r-0123456789ab", device: "DEVICE") == 8033)
        #expect(StageSelection.bucket(rollout: "r-0123456789ab", device: "dev-0") == 6337)
        #expect(StageSelection.bucket(rollout: "r-0123456789ab", device: "esp32-kitchen") == 1403)
        #expect(StageSelection.firstStage(ofBucket: 8033, stages: [1, 10, 50, 100]) == 3)
        #expect(StageSelection.firstStage(ofBucket: 1403, stages: [1, 10, 50, 100]) == 2)
        #expect(StageSelection.firstStage(ofBucket: 999, stages: [1, 10, 50, 100]) == 1)
        #expect(StageSelection.firstStage(ofBucket: 1000, stages: [1, 10, 50]) == 2)
        #expect(StageSelection.firstStage(ofBucket: 5000, stages: [1, 10, 50]) == nil)
    }

    @Test("with 100,000 devices each stage holds its percentage within one point")
    func proportions() {
        let buckets = (0..<100_000).map { StageSelection.bucket(rollout: Fixture.rollout, device: "esp32-\($0)") }
        #expect(buckets.allSatisfy { (0..<StageSelection.buckets).contains($0) })
        for percent in [1, 10, 50, 100] {
            let share = Double(buckets.filter { $0 < percent * 100 }.count) / 1000  // in percent
            #expect(abs(share - Double(percent)) <= 1.0, "stage \(percent)%: \(share)% of devices")
        }
        // Another rollout id draws another sample: the same device lands elsewhere.
        let other = (0..<1000).map { StageSelection.bucket(rollout: "r-ba9876543210", device: "esp32-\($0)") }
        #expect(zip(buckets, other).filter { $0.0 == $0.1 }.count < 10)
    }

    static let deviceIDs = Gen.letterOrNumber.string(of: 1...12).map { "esp32-" + $0 }

    @Test("adding devices moves no existing device: buckets, stages and the census only add up")
    func stableUnderAdditions() async {
        let plan = Fixture.plan(stages: [1, 10, 50, 100])
        await propertyCheck(count: 50, input: Self.deviceIDs.array(of: 0...40), Self.deviceIDs.array(of: 1...40)) { before, added in
            func facts(_ ids: [String]) -> [DeviceFacts] { ids.map { Fixture.facts($0) } }
            func stage(of id: String) -> Int? {
                StageSelection.firstStage(ofBucket: StageSelection.bucket(rollout: plan.id, device: id), stages: plan.stages)
            }
            // A device's stage is its own: the same alone as among all the others.
            let together = RolloutView.census(of: facts(before + added), plan: plan)
            for id in before {
                let alone = RolloutView.census(of: facts([id]), plan: plan)
                #expect(alone == plan.stages.indices.map { index in stage(of: id).map { $0 <= index ? 1 : 0 } ?? 0 })
            }
            #expect(together.last == before.count + added.count)
            let censusBefore = RolloutView.census(of: facts(before), plan: plan)
            let censusAdded = RolloutView.census(of: facts(added), plan: plan)
            let censusAll = RolloutView.census(of: facts(before + added), plan: plan)
            #expect(censusAll == zip(censusBefore, censusAdded).map { $0 + $1 }, "the census is additive over devices")
            #expect(censusAll.last == before.count + added.count, "the last stage (100%) holds every matching device")
            #expect(zip(censusAll, censusAll.dropFirst()).allSatisfy { $0 <= $1 }, "cumulative stages only add devices")
        }
    }

    @Test("each stage's devices are all still selected in the next stage, and the view offers exactly them")
    func cumulativeStages() throws {
        let plan = Fixture.plan(stages: [5, 20, 60, 100])
        let devices = (0..<400).map { "esp32-\($0)" }
        var selected: [Set<String>] = []
        for stage in plan.stages.indices {
            var state = Fixture.approved(plan)
            state.setStage(StageMark(stage: stage, since: Fixture.now, gateway: "gw-1"))
            let view = Fixture.view(state)
            try #require(view.mode == .running && view.stage == stage)
            let starting = devices.filter {
                if case .start = view.decide(Fixture.facts($0), version: "1.0.0", outcome: nil, inFlightHere: 0, now: Fixture.now, gateway: "gw-1") {
                    return true
                }
                return false
            }
            #expect(Set(starting) == Set(devices.filter { StageSelection.bucket(rollout: plan.id, device: $0) < plan.stages[stage] * 100 }))
            selected.append(Set(starting))
        }
        for (earlier, later) in zip(selected, selected.dropFirst()) {
            #expect(earlier.isSubset(of: later))
            #expect(earlier.count < later.count)
        }
        #expect(selected.last?.count == devices.count)
        #expect(selected.first!.count > 5 && selected.first!.count < 40, "about 5% of 400")
    }
}
