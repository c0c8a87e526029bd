import Crypto
import OTAMeshCommon
import OTAMeshRollout
import OTAMeshTrust

/// A deterministic simulation of one staged rollout over a whole site: every gateway runs the
/// real pure rollout core (``RolloutState`` merges, ``RolloutView`` decisions, signatures checked
/// against a 2-of-3 ``SiteTrust``) the way `RolloutEngine.upkeep` does, over a compact model of
/// the mesh's replication instead of the full ``GossipNode``.
///
/// **Replication model.** Each gateway owns a log of the records it writes (the `ro/` records
/// of ``RolloutRecords``: command parts, its devices' outcomes, its census, halt and stage
/// marks), numbered from 1. A gateway holds, per owner, a gap-free prefix of that log
/// (Scuttlebutt, GOSSIP-AND-STYLE.md §1.4): rumours carry ranges of a log and are applied
/// when they join the prefix (else kept until they do); push-pull compares the prefixes (a digest
/// of one version per owner) and sends each side the ranges it lacks. Bytes on the wire are the
/// encoded records (key + value + 10 B framing) plus per-packet and per-item headers, so the
/// KB/s figures are the records' real sizes. Why not ``GossipSimulation``: it replicates every
/// record in every node's ``ReplicatedRecords`` — 100,000 outcomes × 1,000 gateways is 10⁸
/// record copies and a full-state push-pull of 100,000 records per exchange.
///
/// **Outcomes.** A gateway keeps its own devices' outcomes in its ``RolloutState`` and every
/// other owner's in an ``OutcomeTally`` updated record by record, and builds its view with
/// ``RolloutView/init(state:tally:trust:cache:)``; ``materializedState(of:)`` rebuilds the full
/// state (every outcome) of a gateway, for checks.
public struct RolloutSimulation: Sendable {
    public static let rolloutID = "r-5e1f00d0a11c"
    public static let site = "sim-site"
    /// 2026-11-23T00:00:00Z in milliseconds: simulated time 0.
    public static let epochMillis: Int64 = 1_795_392_000_000
    public static let target = RolloutTarget(
        path: "esp32/app-2.0.0.bin", sha256: String(repeating: "5e", count: 32),
        length: 1_234_567, version: "2.0.0", hardware: "esp32")

    enum Record: Sendable {
        case command(CommandCopy)
        case outcome(device: Int, DeviceOutcome, previous: Int)
        case census(Census)
        case halt(HaltMark)
        case stage(StageMark)
    }

    struct Entry: Sendable {
        var record: Record
        var bytes: Int
        /// Commands, halt and stage marks: joins that may be applied out of order (outcomes
        /// may not: the tally replaces a device's previous outcome).
        var isMark: Bool {
            switch record {
            case .command, .halt, .stage: true
            case .outcome, .census: false
            }
        }
    }

    /// A range `from...to` (1-based, inclusive) of `owner`'s log.
    struct Item: Sendable, Equatable {
        var owner: Int32
        var from: Int32
        var to: Int32
    }

    /// Queued ranges in enqueue order; `items[head...]` are waiting.
    struct Lane: Sendable {
        var items: [Item] = []
        var head = 0
    }

    enum Event: Sendable {
        case upkeep(Int)
        case gossip(Int)
        case pushPull(Int)
        case packet(from: Int, to: Int, [Item], bytes: Int)
        case device(gateway: Int, device: Int, fails: Bool)
        case check
    }

    struct Gateway: Sendable {
        var state: RolloutState
        var tally = OutcomeTally()
        var cache = VerificationCache()
        var view: RolloutView?
        var dirty = true
        /// Per owner: how many of its records this gateway holds (a prefix).
        var held: [Int32]
        var heldTotal = 0
        var pending: [Int32: [Item]] = [:]
        /// Rumour queue, one lane per transmits so far, each in enqueue order (as ``BroadcastQueue``).
        var lanes: [Lane]
        var queued = 0
        /// Own devices (global indices) with no outcome yet, by bucket.
        var untouched: [Int]
        var inFlight: Set<Int> = []
        var planAt: Double?
        var haltAt: Double?
        var sent = 0
        var received = 0
        var rumourBytes = 0
    }

    public let scenario: RolloutScenario
    public let trust: SiteTrust
    let names: [String]
    let facts: [DeviceFacts]
    let buckets: [Int]
    let planCopy: CommandCopy
    var gateways: [Gateway]
    var logs: [[Entry]]
    /// Per owner: prefix sums of record bytes (`sums[o][k]`: bytes of records 1…k).
    var sums: [[Int]]
    var queue = EventQueue<Event>()
    var now = 0.0
    let inGroup: [Bool]
    var lossRandom: SplitMix64
    var peerRandom: SplitMix64
    var deviceRandom: SplitMix64
    /// The gateway whose upkeep tick runs (the ``RolloutUpkeepSink`` steps land on it).
    var ticking = 0
    let retransmits: Int
    let window = 10.0
    var windows: [[Int]]
    /// Per gateway: marks it passed on before they joined its prefix ("owner << 32 | number").
    var forwarded: [Set<Int>]
    /// Per device: the index of its latest outcome in its gateway's log (-1: none).
    var lastOutcome: [Int]

    // Measurements.
    var thresholdAt: Double?
    var haltWriters = 0
    var startsAfterHalt = 0
    var advances: [Int: StageAdvance] = [:]
    var minorityAdvances = 0
    var minorityStage: Int?
    var majorityStage: Int?
    var started = 0
    var succeeded = 0
    var failed = 0
    var packets = 0
    var lost = 0
    var blocked = 0
    var pushPulls = 0
    var inFlightTotal = 0
    var catchUpAt: Double?
    var endedAt: Double?

    public init(_ scenario: RolloutScenario) {
        precondition(scenario.gateways >= 2 && scenario.gateways < 1 << 20 && scenario.devicesPerGateway >= 1, "need 2… gateways and 1… devices")
        self.scenario = scenario
        let count = scenario.gateways
        names = (0..<count).map { "gw-" + Self.padded($0, count - 1) }
        var setup = SplitMix64(seed: scenario.seed, stream: RandomStream.setup)
        // Three admins, any two sign: keys drawn from the seed, so a run signs the same bytes.
        let admins: [TUFSigner] = (0..<3).map { _ in
            let raw = (0..<4).flatMap { _ in withUnsafeBytes(of: setup.next().littleEndian, Array.init) }
            // 32 bytes are always a valid Ed25519 seed.
            return .ed25519(try! Curve25519.Signing.PrivateKey(rawRepresentation: raw))
        }
        trust = try! SiteTrust(site: Self.site, threshold: 2, admins: admins.map(\.publicKey))  // three distinct keys, threshold 2
        let plan = RolloutPlan(
            id: Self.rolloutID, target: Self.target, selector: DeviceSelector(terms: ["hardware": ["esp32"]]),
            stages: scenario.stages, soakSeconds: scenario.soakSeconds, successPercent: scenario.successPercent,
            maxFailurePercent: scenario.maxFailurePercent, maxFailures: scenario.maxFailures,
            minFinished: scenario.minFinished, concurrency: scenario.concurrency, deviceTimeoutSeconds: 1_800)
        var command = plan.command(site: Self.site, issued: Self.epochMillis / 1000)
        for admin in admins.prefix(2) { try! command.sign(with: admin) }  // Ed25519 signing does not fail
        planCopy = CommandCopy(command)

        var facts: [DeviceFacts] = []
        var buckets: [Int] = []
        for gateway in 0..<count {
            for device in 0..<scenario.devicesPerGateway {
                let serial = UInt64(gateway) << 16 | UInt64(device)
                let other = scenario.otherHardwareEvery > 0 && device % scenario.otherHardwareEvery == scenario.otherHardwareEvery - 1
                let id = Self.mac(serial)
                facts.append(DeviceFacts(id: id, hardware: other ? "esp8266" : "esp32", gateway: names[gateway]))
                buckets.append(StageSelection.bucket(rollout: Self.rolloutID, device: id))
            }
        }
        self.facts = facts
        self.buckets = buckets
        let limit = scenario.retransmitLimit
        retransmits = limit
        gateways = (0..<count).map { gateway in
            let mine = (gateway * scenario.devicesPerGateway)..<((gateway + 1) * scenario.devicesPerGateway)
            return Gateway(
                state: RolloutState(id: Self.rolloutID), held: [Int32](repeating: 0, count: count),
                lanes: Array(repeating: Lane(), count: limit), untouched: mine.sorted { (buckets[$0], $0) < (buckets[$1], $1) })
        }
        logs = Array(repeating: [], count: count)
        sums = Array(repeating: [0], count: count)
        var group = [Bool](repeating: false, count: count)
        for index in scenario.partition?.group ?? [] where index < count { group[index] = true }
        inGroup = group
        lossRandom = SplitMix64(seed: scenario.seed, stream: RandomStream.loss)
        peerRandom = SplitMix64(seed: scenario.seed, stream: RandomStream.latency)
        deviceRandom = SplitMix64(seed: scenario.seed, stream: RandomStream.nonce)
        windows = Array(repeating: [], count: count)
        lastOutcome = Array(repeating: -1, count: facts.count)
        forwarded = Array(repeating: [], count: count)
        for gateway in 0..<count {
            queue.schedule(.upkeep(gateway), at: setup.unit() * scenario.upkeepInterval)
            queue.schedule(.gossip(gateway), at: setup.unit() * scenario.gossipInterval)
            queue.schedule(.pushPull(gateway), at: setup.unit() * scenario.pushPullInterval)
        }
        queue.schedule(.check, at: 1)
    }

    /// `02:xx:xx:xx:xx:xx`, locally administered, from a serial.
    static func mac(_ serial: UInt64) -> String {
        let hex = Array("0123456789abcdef")
        var parts = ["02"]
        for shift in stride(from: 32, through: 0, by: -8) {
            let byte = Int((serial >> UInt64(shift)) & 0xFF)
            parts.append(String([hex[byte >> 4], hex[byte & 15]]))
        }
        return parts.joined(separator: ":")
    }

    static func padded(_ value: Int, _ largest: Int) -> String {
        let digits = max(String(largest).count, 4)
        let text = String(value)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    var millis: Int64 { Self.epochMillis + Int64((now * 1000).rounded(.down)) }

    func partitioned(_ a: Int, _ b: Int, at time: Double) -> Bool {
        guard let partition = scenario.partition, time >= partition.start, time < partition.end else { return false }
        return inGroup[a] != inGroup[b]
    }

    /// How many members `gateway` sees alive, itself included, and whether those across the cut
    /// are among them (SWIM declares them dead `deadAfterSeconds` into a partition).
    func aliveView(_ gateway: Int) -> (count: Int, acrossCut: Bool) {
        guard let partition = scenario.partition, now >= partition.start + scenario.deadAfterSeconds,
            now < partition.end + scenario.rejoinSeconds, partition.end - partition.start > scenario.deadAfterSeconds
        else { return (scenario.gateways, true) }
        let minority = partition.group.filter { $0 < scenario.gateways }.count
        return (inGroup[gateway] ? minority : scenario.gateways - minority, false)
    }

    // MARK: Running

    /// Runs until every gateway has settled (every state equal, nothing in flight, the rollout
    /// halted or completed everywhere, any partition healed) or the scenario's limit.
    public mutating func run() -> RolloutSimulationResult {
        while endedAt == nil, let (time, event) = queue.pop() {
            guard time <= scenario.limit else { break }
            now = time
            handle(event)
        }
        return result()
    }

    mutating func handle(_ event: Event) {
        switch event {
        case .upkeep(let gateway):
            if gateway == 0, now >= scenario.planAt, logs[0].isEmpty { write(.command(planCopy), at: 0) }
            upkeep(gateway)
            queue.schedule(.upkeep(gateway), at: now + scenario.upkeepInterval)
        case .gossip(let gateway):
            gossip(gateway)
            queue.schedule(.gossip(gateway), at: now + scenario.gossipInterval)
        case .pushPull(let gateway):
            pushPull(gateway)
            queue.schedule(.pushPull(gateway), at: now + scenario.pushPullInterval)
        case let .packet(from, to, items, bytes):
            if partitioned(from, to, at: now) {
                blocked += 1
                return
            }
            count(bytes, received: to, rumour: true)
            receive(items, at: to)
        case let .device(gateway, device, fails):
            finish(device, at: gateway, fails: fails)
        case .check:
            check()
            queue.schedule(.check, at: now + 1)
        }
    }

    // MARK: The engine's upkeep

    mutating func refreshView(_ gateway: Int) -> RolloutView {
        if !gateways[gateway].dirty, let view = gateways[gateway].view { return view }
        var entry = gateways[gateway]
        let view = RolloutView(state: entry.state, tally: entry.tally, trust: trust, cache: &entry.cache)
        entry.view = view
        entry.dirty = false
        gateways[gateway] = entry
        if thresholdAt == nil, view.thresholdCrossed != nil { thresholdAt = now }
        return view
    }

    /// The gateway's upkeep each second: the same ``RolloutUpkeep/tick`` the agent's
    /// ``RolloutNode`` runs (census, timeouts, starts, marks), with the device requests of that
    /// second as its starts (the sink below).
    mutating func upkeep(_ gateway: Int) {
        let view = refreshView(gateway)
        guard let plan = view.plan else { return }
        let name = names[gateway]
        let mine = (gateway * scenario.devicesPerGateway)..<((gateway + 1) * scenario.devicesPerGateway)
        let inFlight = gateways[gateway].inFlight.sorted().compactMap { device in
            gateways[gateway].state.outcomes[facts[device].id].map { (device: device, outcome: $0) }
        }
        ticking = gateway
        RolloutUpkeep.tick(
            &self, rollout: Self.rolloutID, view: view, census: RolloutView.census(of: Array(facts[mine]), plan: plan),
            own: gateways[gateway].state.census[name], inFlight: inFlight, now: millis, gateway: name,
            completes: false)  // the simulator models no completion
    }

    static func index(of name: String) -> Int? { Int(name.dropFirst(3)) }

    mutating func noteAdvance(_ mark: StageMark, by gateway: Int) {
        if let partition = scenario.partition, inGroup[gateway], now >= partition.start, now < partition.end, mark.stage > 0 {
            minorityAdvances += 1
        }
        if var known = advances[mark.stage] {
            known.writers += 1
            advances[mark.stage] = known
        } else {
            advances[mark.stage] = StageAdvance(stage: mark.stage, percent: scenario.stages[mark.stage], at: now, gateway: names[gateway], writers: 1)
        }
    }

    /// A device reports: the new version, or an error (the engine's `answer` → `confirm`).
    mutating func finish(_ device: Int, at gateway: Int, fails: Bool) {
        guard let outcome = gateways[gateway].state.outcomes[facts[device].id] else { return }
        let view = refreshView(gateway)
        let next =
            fails
            ? view.confirm(outcome, version: nil, error: "flash write failed", now: millis)
            : view.confirm(outcome, version: Self.target.version, error: nil, now: millis)
        guard let next else { return }
        record(next, device: device, at: gateway)
    }

    /// Records an outcome of one of `gateway`'s devices; a failure may cross the threshold, so
    /// the gateway checks for a halt at once (as `RolloutEngine.record` does).
    mutating func record(_ outcome: DeviceOutcome, device: Int, at gateway: Int) {
        write(.outcome(device: device, outcome, previous: lastOutcome[device]), at: gateway)
        lastOutcome[device] = logs[gateway].count - 1
        if outcome.phase.isFinished, gateways[gateway].inFlight.remove(device) != nil {
            inFlightTotal -= 1
            if outcome.phase == .succeeded { succeeded += 1 } else { failed += 1 }
        }
        if outcome.phase == .failed {
            let view = refreshView(gateway)
            if let mark = view.haltDue(now: millis, gateway: names[gateway]) {
                haltWriters += 1
                write(.halt(mark), at: gateway)
            }
        }
    }

    // MARK: Records

    func encodedBytes(_ record: Record) -> Int {
        let framing = 10
        switch record {
        case .command(let copy):
            return RolloutRecords.command(copy, rollout: Self.rolloutID).reduce(0) { $0 + $1.key.utf8.count + $1.value.count + framing }
        case let .outcome(device, outcome, _):
            let (key, value) = RolloutRecords.outcome(outcome, device: facts[device].id, rollout: Self.rolloutID)
            return key.utf8.count + value.count + framing
        case .census(let census):
            let (key, value) = RolloutRecords.census(census.perStage, at: census.at, rollout: Self.rolloutID)
            return key.utf8.count + value.count + framing
        case .halt(let mark):
            let (key, value) = RolloutRecords.halt(mark, rollout: Self.rolloutID)
            return key.utf8.count + value.count + framing
        case .stage(let mark):
            let (key, value) = RolloutRecords.stage(mark, rollout: Self.rolloutID)
            return key.utf8.count + value.count + framing
        }
    }

    /// Appends a record to `gateway`'s own log, applies it there and queues it for rumour.
    mutating func write(_ record: Record, at gateway: Int) {
        let bytes = encodedBytes(record)
        logs[gateway].append(Entry(record: record, bytes: bytes))
        sums[gateway].append(sums[gateway][sums[gateway].count - 1] + bytes)
        let number = Int32(logs[gateway].count)
        apply(owner: gateway, number: Int(number), at: gateway)
        gateways[gateway].held[gateway] = number
        gateways[gateway].heldTotal += 1
        if rumoured(logs[gateway][Int(number) - 1]) { enqueue(Item(owner: Int32(gateway), from: number, to: number), at: gateway) }
    }

    /// Applies record `number` (1-based) of `owner`'s log at `gateway`, through the state's merges.
    mutating func apply(owner: Int, number: Int, at gateway: Int) {
        let entry = logs[owner][number - 1]
        switch entry.record {
        case .command(let copy):
            gateways[gateway].state.add(copy)
            if gateways[gateway].planAt == nil { gateways[gateway].planAt = now }
        case let .outcome(device, outcome, previous):
            var old: DeviceOutcome?
            if previous >= 0, case .outcome(_, let before, _) = logs[owner][previous].record { old = before }
            gateways[gateway].tally.replace(old, with: outcome)
            if owner == gateway { gateways[gateway].state.record(outcome, device: facts[device].id) }
        case .census(let census):
            gateways[gateway].state.setCensus(census, gateway: names[owner])
        case .halt(let mark):
            gateways[gateway].state.setHalt(HaltMark(epoch: mark.epoch, at: mark.at, gateway: names[owner], reason: mark.reason))
            if gateways[gateway].haltAt == nil { gateways[gateway].haltAt = now }
        case .stage(let mark):
            gateways[gateway].state.setStage(StageMark(stage: mark.stage, since: mark.since, gateway: names[owner]))
        }
        gateways[gateway].dirty = true
    }

    /// Applies whatever of `item` extends `gateway`'s prefix of its owner's log; keeps an item
    /// that starts beyond the prefix until the gap fills. Returns the part that was new.
    @discardableResult
    mutating func take(_ item: Item, at gateway: Int, keep: Bool) -> Item? {
        let owner = Int(item.owner)
        let held = gateways[gateway].held[owner]
        guard item.to > held else { return nil }
        guard item.from <= held + 1 else {
            // Beyond the prefix: the marks in it are joins and take effect now (ReplicatedRecords
            // keeps each key on its own); the rest waits for the gap to fill.
            for number in Int(item.from)...Int(item.to) where logs[owner][number - 1].isMark { apply(owner: owner, number: number, at: gateway) }
            if keep { gateways[gateway].pending[item.owner, default: []].append(item) }
            return nil
        }
        for number in Int(held + 1)...Int(item.to) { apply(owner: owner, number: number, at: gateway) }
        gateways[gateway].held[owner] = item.to
        gateways[gateway].heldTotal += Int(item.to - held)
        // Kept items this one made contiguous.
        if var waiting = gateways[gateway].pending.removeValue(forKey: item.owner) {
            waiting.sort { $0.from < $1.from }
            for other in waiting where other.to > gateways[gateway].held[owner] {
                if other.from <= gateways[gateway].held[owner] + 1 {
                    take(other, at: gateway, keep: false)
                } else {
                    gateways[gateway].pending[item.owner, default: []].append(other)
                }
            }
        }
        return Item(owner: item.owner, from: held + 1, to: item.to)
    }
}
