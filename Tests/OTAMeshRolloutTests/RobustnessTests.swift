import OTAMeshRollout
import OTAMeshTrust
import PropertyBased
import Testing

/// Records come from every gateway of the mesh and plans from admins' hands: whatever arrives,
/// a gateway reports what it cannot read and goes on — it never crashes.
@Suite("robustness")
struct RobustnessTests {
    typealias F = Fixture

    static let tokens = [
        "0", "1", "-1", "2", "19", "20", "9999", "10000", "9223372036854775807", "-9223372036854775808",
        "99999999999999999999", "offered", "downloading", "installing", "failed", "succeeded", "x", "",
        "3,4", "1,,2", "ü", "\n", "\u{0}", " ",
    ]
    static let ids = [F.rollout, F.rollout, F.rollout, "r-ffffffffffff", "r-xyz", "", "r-0123456789AB"]
    static let kinds = ["c", "d", "n", "h", "s", "q", ""]
    static let owners = ["gw-a", "gw-b", "gw-c"]

    static func pick<T>(_ items: [T], _ rng: inout any SeededRandomNumberGenerator) -> T { items.randomElement(using: &rng)! }

    static func text(_ rng: inout any SeededRandomNumberGenerator, separator: String = " ") -> String {
        (0..<Int.random(in: 0...7, using: &rng)).map { _ in pick(tokens, &rng) }.joined(separator: separator)
    }

    static func bytes(_ rng: inout any SeededRandomNumberGenerator, upTo count: Int = 48) -> [UInt8] {
        (0..<Int.random(in: 0...count, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// Bits of JSON, to build envelopes that are almost commands.
    static let jsonBits = [
        "{", "}", "[", "]", ",", ":", "\"signed\"", "\"signatures\"", "\"_type\"", "\"otamesh-command\"", "\"site\"",
        "\"sequence\"", "\"kind\"", "\"issued\"", "\"payload\"", "\"2026-11-23T00:00:00Z\"", "1", "-1", "null", "\"keyid\"", "\"sig\"",
    ]

    /// A command part whose header hash matches its bytes, so the envelope parser sees them.
    static func commandPart(_ rng: inout any SeededRandomNumberGenerator) -> [UInt8] {
        var body: [UInt8]
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: body = Array(String(repeating: "[", count: Int.random(in: 50...2000, using: &rng)).utf8)
        case 1: body = bytes(&rng, upTo: 200)
        case 2:
            // A real envelope with some bytes changed.
            body = Pool.copies.randomElement(using: &rng)!.command!.compactBytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) { body[Int.random(in: 0..<body.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
        default: body = Array((0..<Int.random(in: 1...40, using: &rng)).map { _ in pick(jsonBits, &rng) }.joined().utf8)
        }
        body = Array(body.prefix(RolloutRecords.partSize))
        return Array("\(RolloutHash.hex(body).prefix(16)) 0/1\n".utf8) + body
    }

    static let extremes: [Int64] = [0, 1, -1, 2, 9999, .max, .min, .max / 1000, .min / 1000, F.now, -F.now]
    static let counts: [Int] = [0, 3, .max, .max / 2, .max / 100]

    /// A record of the right shape for its key, with extreme numbers.
    static func wellFormed(_ key: String, _ rng: inout any SeededRandomNumberGenerator) -> [UInt8] {
        let text: String
        if key.hasSuffix("/n") {
            text = (0..<Int.random(in: 1...3, using: &rng)).map { _ in String(pick(counts, &rng)) }.joined(separator: ",")
        } else if key.hasSuffix("/s") {
            text = "\(Int.random(in: 0...19, using: &rng)) \(pick(extremes, &rng))"
        } else if key.hasSuffix("/h") {
            text = "\(pick(extremes, &rng)) \(pick(extremes, &rng)) too many failures"
        } else {
            text =
                "\(pick(extremes, &rng)) \(pick(DeviceOutcome.Phase.allCases, &rng)) \(Int.random(in: 0...9999, using: &rng)) "
                + "\(pick(extremes, &rng)) \(pick(extremes, &rng)) detail"
        }
        return Array(text.utf8)
    }

    static let entry = Generator<RolloutRecords.Entry, Shrink.None<RolloutRecords.Entry>> { rng in
        let id = pick(ids, &rng)
        let kind = pick(kinds, &rng)
        let key: String
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: key = "ro/" + text(&rng, separator: pick(["/", "", " "], &rng))
        case 1: key = "ro/\(id)/\(kind)"
        case 2: key = "ro/\(id)/\(kind)/" + pick(["dev-1", "dev-2", "1/0", "2/0", "1/-1", "-1/0", "1/16", "x/y/z", "", "1", "dev/with/slash"], &rng)
        case 3: key = "ro/\(F.rollout)/c/" + pick(["1", "2", "3"], &rng) + "/0"
        case 4: key = "ro/\(F.rollout)/" + pick(["n", "s", "h", "d/dev-1", "d/dev-2"], &rng)
        default: key = "members/" + text(&rng)
        }
        let value: [UInt8]
        let shaped = key.hasPrefix("ro/\(F.rollout)/") && !key.contains("/c") && Bool.random(using: &rng)
        switch shaped ? 4 : Int.random(in: 0..<5, using: &rng) {
        case 0: value = bytes(&rng)
        case 1: value = Array(text(&rng).utf8)
        case 2: value = Array(text(&rng, separator: ",").utf8)
        case 3: value = Array("\(text(&rng)) \(Int.random(in: -2...17, using: &rng))/\(Int.random(in: -2...17, using: &rng))\n".utf8) + bytes(&rng)
        default: value = key.contains("/c/") ? commandPart(&rng) : wellFormed(key, &rng)
        }
        return RolloutRecords.Entry(key: key, owner: pick(owners, &rng), value: value)
    }

    static func isCommandKey(_ key: String) -> Bool {
        let fields = key.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        return fields.count >= 3 && fields[2] == "c"
    }

    @Test("one record at a time: it is read or reported, never dropped in silence; other keys are ignored")
    func singleRecords() async {
        await propertyCheck(count: 1500, input: Self.entry) { entry in
            let decoded = RolloutRecords.decode([entry])
            for problem in decoded.problems {
                guard case .invalidRecord(let key, let reason) = problem else {
                    Issue.record("not a record problem: \(problem)")
                    continue
                }
                #expect(key.hasPrefix("ro/") && !reason.isEmpty)
            }
            let accepted = decoded.rollouts.values.contains {
                !$0.outcomes.isEmpty || !$0.census.isEmpty || $0.halt != nil || $0.stage != nil || !$0.commands.isEmpty
            }
            if !entry.key.hasPrefix("ro/") {
                #expect(decoded.problems.isEmpty && decoded.rollouts.isEmpty)
            } else if Self.isCommandKey(entry.key) {
                // A part of a longer envelope may still be waiting for the rest.
                #expect(decoded.problems.count <= 1)
                #expect(!(accepted && !decoded.problems.isEmpty))
            } else {
                #expect(decoded.problems.count + (accepted ? 1 : 0) == 1, "\(decoded.problems)")
            }
        }
    }

    @Test("any pile of records decodes, and the view, halt, stage and device decisions on it do not crash")
    func recordPiles() async {
        let plan = F.plan(maxFailurePercent: 10, minFinished: 1)
        let approved = F.approved(plan)
        await propertyCheck(count: 300, input: Self.entry.array(of: 0...30)) { generated in
            // The mesh holds one value per (owner, key).
            var slots = Set<String>()
            let entries = generated.filter { slots.insert($0.owner + " " + $0.key).inserted }
            let decoded = RolloutRecords.decode(entries)
            #expect(decoded.problems.count <= entries.count)
            for (id, state) in decoded.rollouts {
                #expect(RolloutPlanID.isValid(id))
                let full = id == F.rollout ? approved.merging(state) : state
                let view = F.view(full)
                #expect(view.failed <= view.finished && view.finished <= full.outcomes.count)
                _ = view.thresholdCrossed
                _ = view.haltDue(now: F.now, gateway: "gw-1")
                _ = view.stageDue(now: F.now + F.hour, gateway: "gw-1", members: 3, censusGateways: 2)
                for (device, outcome) in full.outcomes {
                    _ = view.decide(F.facts(device), version: "1.0.0", outcome: outcome, inFlightHere: 0, now: F.now, gateway: "gw-1")
                    _ = view.confirm(outcome, version: "2.0.0", error: nil, now: F.now)
                    _ = view.timedOut(outcome, now: F.now + F.hour)
                }
                // The records decode to the same state whatever their order.
                #expect(RolloutRecords.decode(entries.reversed()).rollouts[id] == state)
            }
        }
    }

    // MARK: Plan JSON

    static let interestingIntegers: [Int64] = [
        0, 1, -1, 5, 20, 21, 99, 100, 101, 1000, 1001, 86_400, Int64(Int32.max),
        Int64.max, Int64.min, Int64.max / 1000, Int64.max / 100,
    ]
    static let interestingStrings = [
        "", "r-0123456789ab", "r-0123456789AB", "hardware=esp32", "colour=red", "22:00-04:00", "25:00-01:00",
        String(repeating: "ab", count: 32), String(repeating: "AB", count: 32), "2.0.0", "esp32", "=", ",",
    ]

    static func json(_ rng: inout any SeededRandomNumberGenerator, depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth < 3 ? 7 : 4), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .integer(Bool.random(using: &rng) ? pick(interestingIntegers, &rng) : Int64.random(in: .min ... .max, using: &rng))
        case 3: return .string(pick(interestingStrings, &rng))
        case 4: return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in json(&rng, depth: depth + 1) })
        default:
            var object = JSONObject()
            for _ in 0..<Int.random(in: 0...4, using: &rng) { object[pick(planKeys, &rng)] = json(&rng, depth: depth + 1) }
            return .object(object)
        }
    }

    static let planKeys = [
        "id", "target", "select", "stages", "soak", "success", "maxFailurePercent", "maxFailures", "minFinished",
        "concurrency", "deviceTimeout", "window", "path", "sha256", "length", "version", "hardware", "extra",
    ]

    /// A real plan's JSON with one to three fields removed or replaced (at the top or in target).
    static let planJSON = Generator<JSONValue, Shrink.None<JSONValue>> { rng in
        if Int.random(in: 0..<5, using: &rng) == 0 { return json(&rng) }
        let base = F.plan(
            maxFailurePercent: 5, maxFailures: 3, window: try! MaintenanceWindow(parsing: "22:00-04:00"),
            selector: try! DeviceSelector(parsing: "hardware=esp32,tag=floor2"))
        var object = base.json.objectValue!
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            let key = pick(planKeys, &rng)
            let value: JSONValue? =
                Int.random(in: 0..<4, using: &rng) == 0
                ? nil
                : Bool.random(using: &rng) ? .integer(pick(interestingIntegers, &rng)) : json(&rng)
            if ["path", "sha256", "length", "version", "hardware"].contains(key) {
                var target = object["target"]?.objectValue ?? JSONObject()
                target[key] = value
                object["target"] = .object(target)
            } else {
                object[key] = value
            }
        }
        return .object(object)
    }

    @Test("random and mangled plan JSON is refused with a plan error, or gives a valid plan that survives its JSON form and runs")
    func planJSON() async {
        await propertyCheck(count: 800, input: Self.planJSON) { json in
            let plan: RolloutPlan
            do throws(RolloutError) {
                plan = try RolloutPlan(json: json)
            } catch {
                switch error {
                case .invalidPlan, .invalidSelector: break
                default: Issue.record("unexpected error \(error)")
                }
                return
            }
            #expect(throws: Never.self) { try plan.validate() }
            #expect((try? RolloutPlan(json: plan.json)) == plan)
            // An accepted plan drives every decision without trapping, however extreme its numbers.
            var state = F.approved(plan)
            state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
            let view = F.view(state)
            #expect(view.plan == plan)
            let outcome = DeviceOutcome(epoch: 1, phase: .downloading, bucket: 0, gateway: "gw-1", started: F.now, updated: F.now)
            _ = view.stageDue(now: F.now + F.hour, gateway: "gw-1", members: 1, censusGateways: 1)
            _ = view.timedOut(outcome, now: F.now + F.hour)
            _ = view.decide(F.facts("dev-1"), version: nil, outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
        }
    }
}

enum RolloutPlanID {
    static func isValid(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return bytes.count == 14 && id.hasPrefix("r-") && bytes.dropFirst(2).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
