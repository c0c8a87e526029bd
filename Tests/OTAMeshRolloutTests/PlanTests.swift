import OTAMeshRollout
import OTAMeshTrust
import PropertyBased
import Testing

/// The plan is what admins sign and every gateway reads back: it must survive its JSON form, and
/// a bad plan must be refused with a message that says which field and why.
@Suite("rollout plans")
struct PlanTests {
    static let plans = Generator<RolloutPlan, Shrink.None<RolloutPlan>> { rng in
        let hex = Array("0123456789abcdef")
        let id = "r-" + String((0..<12).map { _ in hex.randomElement(using: &rng)! })
        var stages: [Int] = []
        var next = Int.random(in: 1...40, using: &rng)
        while next <= 100, stages.count < 20 {
            stages.append(next)
            next += Int.random(in: 1...40, using: &rng)
        }
        let words = ["esp32", "esp32-eth", "floor2", "gw-1", "GW-2", "nrf52", "lab"]
        var terms: [String: Set<String>] = [:]
        for key in DeviceSelector.keys where Bool.random(using: &rng) {
            terms[key] = Set((0..<Int.random(in: 1...2, using: &rng)).map { _ in words.randomElement(using: &rng)! })
        }
        let window: MaintenanceWindow? =
            Bool.random(using: &rng) ? nil : try! MaintenanceWindow(start: Int.random(in: 0..<720, using: &rng), end: Int.random(in: 720..<1440, using: &rng))
        let sha = String((0..<64).map { _ in Array("0123456789abcdefABCDEF").randomElement(using: &rng)! })
        return RolloutPlan(
            id: id,
            target: RolloutTarget(
                path: "fw/app-\(Int.random(in: 1...99, using: &rng)).bin", sha256: sha, length: Int64.random(in: 1...(1 << 40), using: &rng),
                version: Bool.random(using: &rng) ? "2.\(Int.random(in: 0...9, using: &rng)).0" : nil,
                hardware: Bool.random(using: &rng) ? "esp32" : nil),
            selector: DeviceSelector(terms: terms), stages: stages, soakSeconds: Int64.random(in: 0...86_400, using: &rng),
            successPercent: Int.random(in: 0...100, using: &rng),
            maxFailurePercent: Bool.random(using: &rng) ? Int.random(in: 0...100, using: &rng) : nil,
            maxFailures: Bool.random(using: &rng) ? Int.random(in: 0...1000, using: &rng) : nil,
            minFinished: Int.random(in: 0...50, using: &rng), concurrency: Int.random(in: 1...1000, using: &rng),
            deviceTimeoutSeconds: Int64.random(in: 1...86_400, using: &rng), window: window)
    }

    @Test("a valid plan survives its JSON form, also as the canonical bytes that get signed")
    func jsonRoundTrip() async throws {
        await propertyCheck(count: 200, input: Self.plans) { plan in
            #expect(throws: Never.self) { try plan.validate() }
            #expect(try RolloutPlan(json: plan.json) == plan)
            #expect(try RolloutPlan(json: JSONValue.parse(plan.json.canonicalBytes)) == plan)
            // The signed command carries it unchanged.
            let copy = Fixture.planCopy(plan, by: [Fixture.a, Fixture.b])
            let command = try #require(copy.command)
            #expect(try RolloutPlan(json: command.payload) == plan)
        }
    }

    static func refused(_ plan: RolloutPlan, _ field: String, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: RolloutError.invalidPlan(field: field, reason: reason), sourceLocation: sourceLocation) { try plan.validate() }
        // Also when it arrives as JSON.
        #expect(throws: RolloutError.invalidPlan(field: field, reason: reason), sourceLocation: sourceLocation) { try RolloutPlan(json: plan.json) }
    }

    @Test("stages must be 1 to 20 strictly rising percentages within 1…100")
    func badStages() {
        Self.refused(Fixture.plan(stages: []), "stages", "give 1 to 20 cumulative percentages")
        Self.refused(Fixture.plan(stages: Array(1...21)), "stages", "give 1 to 20 cumulative percentages")
        Self.refused(Fixture.plan(stages: [10, 50, 50]), "stages", "stages must rise: 50 after 50")
        Self.refused(Fixture.plan(stages: [50, 10]), "stages", "stages must rise: 10 after 50")
        Self.refused(Fixture.plan(stages: [10, 101]), "stages", "101 is not within 1…100")
        Self.refused(Fixture.plan(stages: [0, 100]), "stages", "0 is not within 1…100")
        #expect(throws: Never.self) { try Fixture.plan(stages: [100]).validate() }
        #expect(
            "\(RolloutError.invalidPlan(field: "stages", reason: "stages must rise: 10 after 50"))" == "rollout plan: stages: stages must rise: 10 after 50")
    }

    @Test("the id is r- and 12 lower-case hex digits")
    func badID() {
        for id in ["r-0123456789AB", "r-0123456789a", "r-0123456789abc", "x-0123456789ab", "r-01234567890g", "", "r-٠١٢٣٤٥٦٧٨٩ab"] {
            Self.refused(Fixture.plan(id: id), "id", "'\(id)' is not r- and 12 lower-case hex digits")
        }
    }

    @Test("percentages, counts, concurrency and timeouts out of range are refused by field")
    func badNumbers() {
        Self.refused(Fixture.plan(success: 101), "success", "101% is not within 0…100")
        Self.refused(Fixture.plan(success: -1), "success", "-1% is not within 0…100")
        Self.refused(Fixture.plan(maxFailurePercent: 101), "max-failures", "101% is not within 0…100")
        Self.refused(Fixture.plan(maxFailurePercent: -5), "max-failures", "-5% is not within 0…100")
        Self.refused(Fixture.plan(maxFailures: -1), "max-failures", "must not be negative")
        Self.refused(Fixture.plan(minFinished: -1), "min-finished", "must not be negative")
        Self.refused(Fixture.plan(concurrency: 0), "concurrency", "0 is not within 1…1000")
        Self.refused(Fixture.plan(concurrency: 1001), "concurrency", "1001 is not within 1…1000")
        Self.refused(Fixture.plan(soak: -1), "soak", "must not be negative")
        Self.refused(Fixture.plan(timeout: 0), "device-timeout", "must be above zero")
        var plan = Fixture.plan()
        plan.target.length = 0
        Self.refused(plan, "target", "needs a path, a 64-digit SHA-256 and a length above zero")
        plan = Fixture.plan()
        plan.target.sha256 = String(repeating: "g", count: 64)
        Self.refused(plan, "target", "needs a path, a 64-digit SHA-256 and a length above zero")
        plan = Fixture.plan()
        plan.target.sha256 = String(repeating: "a", count: 63)
        Self.refused(plan, "target", "needs a path, a 64-digit SHA-256 and a length above zero")
        plan = Fixture.plan()
        plan.target.sha256 = String(repeating: "\u{FF10}", count: 64)  // fullwidth zeros: digits, but not hex a digest has
        Self.refused(plan, "target", "needs a path, a 64-digit SHA-256 and a length above zero")
        // Soak and timeout are compared in milliseconds; a year is the limit.
        Self.refused(Fixture.plan(soak: Int64.max), "soak", "more than a year (31536000 s)")
        Self.refused(Fixture.plan(timeout: 31_536_001), "device-timeout", "more than a year (31536000 s)")
        Self.refused(Fixture.plan(timeout: Int64.max / 1000 + 1), "device-timeout", "more than a year (31536000 s)")
        // Boundaries that are fine.
        #expect(throws: Never.self) { try Fixture.plan(soak: 31_536_000, timeout: 31_536_000).validate() }
        #expect(throws: Never.self) { try Fixture.plan(success: 0, maxFailurePercent: 100, maxFailures: 0, minFinished: 0, concurrency: 1000).validate() }
    }

    @Test("plan JSON with missing or mistyped fields is refused, naming the field")
    func badJSON() throws {
        let good = Fixture.plan(window: try MaintenanceWindow(parsing: "22:00-04:00"), selector: try DeviceSelector(parsing: "hardware=esp32"))
        func without(_ key: String) -> JSONValue {
            var object = good.json.objectValue!
            object[key] = nil
            return .object(object)
        }
        func with(_ key: String, _ value: JSONValue) -> JSONValue {
            var object = good.json.objectValue!
            object[key] = value
            return .object(object)
        }
        #expect(throws: RolloutError.invalidPlan(field: "id", reason: "missing")) { try RolloutPlan(json: without("id")) }
        #expect(throws: RolloutError.invalidPlan(field: "target", reason: "needs path, sha256 and length")) { try RolloutPlan(json: without("target")) }
        #expect(throws: RolloutError.invalidPlan(field: "stages", reason: "missing")) { try RolloutPlan(json: without("stages")) }
        #expect(throws: RolloutError.invalidPlan(field: "stages", reason: "not integers")) { try RolloutPlan(json: with("stages", .array([.string("10")]))) }
        #expect(throws: RolloutError.invalidPlan(field: "soak", reason: "missing or not an integer")) { try RolloutPlan(json: with("soak", .string("600"))) }
        #expect(throws: RolloutError.invalidPlan(field: "maxFailures", reason: "not an integer")) { try RolloutPlan(json: with("maxFailures", .bool(true))) }
        #expect(throws: RolloutError.self) { try RolloutPlan(json: with("select", .string("colour=red"))) }
        #expect(throws: RolloutError.self) { try RolloutPlan(json: with("window", .string("25:00-01:00"))) }
        #expect(throws: RolloutError.self) { try RolloutPlan(json: .array([])) }
        // A selector or window of the wrong type must not silently widen the plan to every device
        // or every hour.
        #expect(throws: RolloutError.invalidPlan(field: "select", reason: "not a string")) {
            try RolloutPlan(json: with("select", .array([.string("hardware=esp32")])))
        }
        #expect(throws: RolloutError.invalidPlan(field: "window", reason: "not a string")) { try RolloutPlan(json: with("window", .integer(2200))) }
        var target = good.json["target"]!.objectValue!
        target["version"] = .integer(2)
        #expect(throws: RolloutError.invalidPlan(field: "target.version", reason: "not a string")) { try RolloutPlan(json: with("target", .object(target))) }
        // null is as good as absent.
        #expect(try RolloutPlan(json: with("window", .null)).window == nil)
        // Without a selector the plan selects every device; without a window any time is fine.
        var bare = good.json.objectValue!
        bare["select"] = nil
        bare["window"] = nil
        let open = try RolloutPlan(json: .object(bare))
        #expect(open.selector == DeviceSelector() && open.window == nil)
    }

    @Test("device selectors: keys AND, a repeated key ORs, values ignore case, unknown keys are refused")
    func selectors() throws {
        let selector = try DeviceSelector(parsing: "hardware=esp32,tag=floor2")
        #expect(selector.terms == ["hardware": ["esp32"], "tag": ["floor2"]])
        #expect(selector.matches(DeviceFacts(id: "d", hardware: "ESP32", tags: ["floor2", "lab"], gateway: "gw-1")))
        #expect(!selector.matches(DeviceFacts(id: "d", hardware: "esp32", tags: ["floor3"], gateway: "gw-1")))
        #expect(!selector.matches(DeviceFacts(id: "d", hardware: "nrf52", tags: ["floor2"], gateway: "gw-1")))
        #expect(!selector.matches(DeviceFacts(id: "d", hardware: nil, tags: ["floor2"], gateway: "gw-1")))

        let either = try DeviceSelector(parsing: "gateway=gw1, gateway = GW2")
        #expect(either.matches(DeviceFacts(id: "d", gateway: "gw1")))
        #expect(either.matches(DeviceFacts(id: "d", gateway: "gw2")))
        #expect(!either.matches(DeviceFacts(id: "d", gateway: "gw3")))
        #expect(either.text == "gateway=gw1,gateway=gw2")
        #expect(try DeviceSelector(parsing: either.text) == either)

        let variant = try DeviceSelector(parsing: "variant=esp32-eth")
        #expect(variant.matches(DeviceFacts(id: "d", variant: "ESP32-ETH", gateway: "g")))
        #expect(!variant.matches(DeviceFacts(id: "d", gateway: "g")))

        let all = try DeviceSelector(parsing: "")
        #expect(all.terms.isEmpty && all.text == "" && all.description == "all devices")
        #expect(all.matches(DeviceFacts(id: "anything", gateway: "g")))

        #expect(throws: RolloutError.invalidSelector("colour=red", reason: "unknown key 'colour' (known: hardware, variant, tag, gateway)")) {
            try DeviceSelector(parsing: "colour=red")
        }
        #expect(throws: RolloutError.invalidSelector("hardware", reason: "'hardware' is not key=value")) { try DeviceSelector(parsing: "hardware") }
        #expect(throws: RolloutError.invalidSelector("tag=", reason: "'tag=' is not key=value")) { try DeviceSelector(parsing: "tag=") }
    }

    @Test("maintenance windows parse HH:MM-HH:MM in UTC and may wrap past midnight")
    func windows() throws {
        let night = try MaintenanceWindow(parsing: "22:00-04:00")
        #expect(night.start == 22 * 60 && night.end == 4 * 60 && night.description == "22:00-04:00")
        func at(_ h: Int64, _ m: Int64 = 0, day: Int64 = 0) -> Int64 { Fixture.now + day * 24 * Fixture.hour + h * Fixture.hour + m * 60_000 }
        for (time, inside) in [
            (at(22), true), (at(23, 30), true), (at(0), true), (at(3, 59), true), (at(4), false),
            (at(12), false), (at(21, 59), false), (at(23, day: 40), true), (at(5, day: 40), false),
        ] {
            #expect(night.contains(milliseconds: time) == inside, "\(time)")
        }
        let day = try MaintenanceWindow(parsing: "9:05-17:30")
        #expect(day.description == "09:05-17:30")
        #expect(try MaintenanceWindow(parsing: day.description) == day)
        #expect(day.contains(milliseconds: at(9, 5)) && day.contains(milliseconds: at(17, 29)))
        #expect(!day.contains(milliseconds: at(17, 30)) && !day.contains(milliseconds: at(9, 4)) && !day.contains(milliseconds: at(23)))
        for text in ["25:00-01:00", "10:00-10:00", "10-12", "10:0-11:00", "", "22:00", "22:00-04:00-05:00", "aa:bb-cc:dd", "12:60-13:00"] {
            #expect(throws: RolloutError.self, "\(text)") { try MaintenanceWindow(parsing: text) }
        }
        #expect(throws: RolloutError.invalidPlan(field: "window", reason: "'10-12' is not HH:MM-HH:MM (UTC)")) { try MaintenanceWindow(parsing: "10-12") }
    }
}
