/// What a gateway passes to `stageDue` as `members`.
public enum StageMembers: String, Sendable, Equatable, Codable {
    /// The members SWIM holds alive, itself included: what `RolloutEngine.upkeep` passes today.
    /// Once SWIM declares the other side of a partition dead, a minority's majority is of itself.
    case alive
    /// Every member it knows (alive, suspected or dead, not left); census still counts only from
    /// alive ones. A minority then never holds a majority.
    case known
}

/// Which records travel by rumour (push-pull carries them all either way).
public enum RumourRecords: String, Sendable, Equatable, Codable {
    /// Every record, outcomes and census included: as the mesh is built.
    case all
    /// Only plan/control commands and halt and stage marks; outcomes and census by push-pull.
    case marks
}

/// One staged rollout over a simulated site: G gateways with D devices each, the plan's rules,
/// how devices behave, the network and the partition. Every random draw follows from `seed`.
public struct RolloutScenario: Sendable, Equatable {
    public var gateways: Int
    public var devicesPerGateway: Int
    public var seed: UInt64
    /// Fraction of rumour (UDP) packets dropped, 0…1. Push-pull streams are never lost.
    public var loss: Double
    /// Every this-many-th device is of another hardware than the plan selects (0: none), so the
    /// census differs from the device count.
    public var otherHardwareEvery: Int

    // The plan.
    public var stages: [Int]
    public var soakSeconds: Int64
    public var successPercent: Int
    public var maxFailures: Int?
    public var maxFailurePercent: Int?
    public var minFinished: Int
    public var concurrency: Int

    // Devices: an offered device downloads and installs for a uniform draw from this range, then
    // reports the new version or an error.
    public var installSeconds: ClosedRange<Double>
    /// Probability that a device fails, on the "bad floor" and everywhere else.
    public var badGateways: Range<Int>
    public var badFailure: Double
    public var failure: Double

    // Network and membership.
    public var partition: Partition?
    /// SWIM declares members across a cut dead this long after the cut (and alive again
    /// `rejoinSeconds` after the heal): what `aliveMembers()` returns to the rollout engine.
    public var deadAfterSeconds: Double
    public var stageMembers: StageMembers
    public var rumour: RumourRecords
    public var rejoinSeconds: Double
    /// Rumour: every `gossipInterval` a gateway with something queued sends one packet of at
    /// most `packetBytes` to `fanout` random peers; an update is sent
    /// `retransmitMult × ⌈log10(G + 1)⌉` times by each gateway that learns it (memberlist).
    public var gossipInterval: Double
    public var fanout: Int
    public var packetBytes: Int
    public var retransmitMult: Int
    /// Each gateway starts a push-pull exchange with one random peer this often.
    public var pushPullInterval: Double
    /// The engine's upkeep period (RolloutService: once a second).
    public var upkeepInterval: Double
    public var latency: Double
    /// The plan is signed and written at gateway 0 at this time.
    public var planAt: Double
    /// Give up at this simulated time whatever happened.
    public var limit: Double

    public init(
        gateways: Int = 1_000, devicesPerGateway: Int = 100, seed: UInt64 = 1, loss: Double = 0.1, otherHardwareEvery: Int = 20,
        stages: [Int] = [1, 10, 50, 100], soakSeconds: Int64 = 60, successPercent: Int = 90, maxFailures: Int? = 100,
        maxFailurePercent: Int? = nil, minFinished: Int = 0, concurrency: Int = 4, installSeconds: ClosedRange<Double> = 5...30,
        badGateways: Range<Int> = 0..<0, badFailure: Double = 1, failure: Double = 0, partition: Partition? = nil,
        deadAfterSeconds: Double = 20, stageMembers: StageMembers = .alive, rumour: RumourRecords = .all, rejoinSeconds: Double = 2,
        gossipInterval: Double = 0.2, fanout: Int = 3,
        packetBytes: Int = 1_400, retransmitMult: Int = 4, pushPullInterval: Double = 30, upkeepInterval: Double = 1,
        latency: Double = 0.001, planAt: Double = 0.5, limit: Double = 1_800
    ) {
        self.gateways = gateways
        self.devicesPerGateway = devicesPerGateway
        self.seed = seed
        self.loss = loss
        self.otherHardwareEvery = otherHardwareEvery
        self.stages = stages
        self.soakSeconds = soakSeconds
        self.successPercent = successPercent
        self.maxFailures = maxFailures
        self.maxFailurePercent = maxFailurePercent
        self.minFinished = minFinished
        self.concurrency = concurrency
        self.installSeconds = installSeconds
        self.badGateways = badGateways
        self.badFailure = badFailure
        self.failure = failure
        self.partition = partition
        self.deadAfterSeconds = deadAfterSeconds
        self.stageMembers = stageMembers
        self.rumour = rumour
        self.rejoinSeconds = rejoinSeconds
        self.gossipInterval = gossipInterval
        self.fanout = fanout
        self.packetBytes = packetBytes
        self.retransmitMult = retransmitMult
        self.pushPullInterval = pushPullInterval
        self.upkeepInterval = upkeepInterval
        self.latency = latency
        self.planAt = planAt
        self.limit = limit
    }

    /// The scenario: stages 1, 10, 50, 100 %, soak 60 s, halt above 100 failures. A bad
    /// floor (5 % of the gateways, from G/10) fails every device: its failures stay under the
    /// threshold in stage 1 (about 50 of 950 devices) and cross it in stage 2. The last 10 % of the
    /// gateways are cut off from t = 40 s to 100 s: after stage 1 has finished, across the
    /// majority's advance to stage 2 and its halt.
    public static func halting(
        gateways: Int = 1_000, devicesPerGateway: Int = 100, loss: Double = 0.1, seed: UInt64 = 1,
        stageMembers: StageMembers = .alive, rumour: RumourRecords = .all
    ) -> RolloutScenario {
        let tenth = max(1, gateways / 10)
        return RolloutScenario(
            gateways: gateways, devicesPerGateway: devicesPerGateway, seed: seed, loss: loss,
            badGateways: tenth..<(tenth + max(1, gateways / 20)),
            partition: Partition(from: 40, until: 100, group: Set((gateways - tenth)..<gateways)), stageMembers: stageMembers,
            rumour: rumour)
    }

    /// The update gossip retransmits per gateway: `retransmitMult × ⌈log10(G + 1)⌉`.
    public var retransmitLimit: Int {
        var digits = 0
        var n = gateways + 1
        var exact = true
        while n >= 10 {
            if n % 10 != 0 { exact = false }
            n /= 10
            digits += 1
        }
        return retransmitMult * max(1, digits + (exact && n == 1 ? 0 : 1))
    }
}

/// When one stage was first advanced to, by whom, and how many gateways wrote that stage.
public struct StageAdvance: Sendable, Equatable, Codable {
    public var stage: Int
    public var percent: Int
    public var at: Double
    public var gateway: String
    public var writers: Int
}

/// What a rollout run measured. Times in seconds of simulated time (from 0; the plan is written
/// at `planAt`); nil when it did not happen.
public struct RolloutSimulationResult: Sendable, Equatable, Codable {
    public var gateways: Int
    public var devices: Int
    /// Devices the plan's selector matches (the census total).
    public var matching: Int
    public var lossPercent: Double
    public var seed: UInt64
    /// From the plan's write until every gateway held it.
    public var planEverywhereSeconds: Double?
    public var advances: [StageAdvance]
    /// The first time any gateway's view showed failures past the threshold.
    public var thresholdAt: Double?
    /// Gateways that wrote a halt mark (each whose view crossed before it heard of a halt).
    public var haltWriters: Int
    /// From the first crossing until every gateway outside the partition (all of them, when
    /// there is none) knew the halt; and until every gateway did.
    public var haltLiveSeconds: Double?
    public var haltAllSeconds: Double?
    /// Device updates started by a gateway that already knew the halt. Must be 0.
    public var startsAfterHalt: Int
    /// Stage marks written by partitioned gateways during the partition, and the highest stage
    /// any of them held then (nil: no partition).
    public var minorityAdvances: Int
    public var minorityStage: Int?
    /// The highest stage the rest held during the partition.
    public var majorityStage: Int?
    /// From the heal until every gateway held the halt (if any) and the highest stage mark.
    public var catchUpSeconds: Double?
    /// Every gateway's state equal at the end (commands, census, stage, halt, every outcome).
    public var statesEqual: Bool
    /// The mode every gateway's view shows at the end, with how many show it.
    public var modes: [String: Int]
    public var started: Int
    public var succeeded: Int
    public var failed: Int
    /// Records written (all owners), and rumour packets sent, lost, blocked by the partition.
    public var records: Int
    public var packets: Int
    public var lost: Int
    public var blocked: Int
    public var pushPulls: Int
    /// Bytes sent + received per gateway per second over the run: the mean over gateways, the
    /// highest gateway, and the highest gateway in any 10 s window.
    public var meanBytesPerSecond: Double
    public var maxBytesPerSecond: Double
    public var peakBytesPerSecond: Double
    /// Share of those bytes that were rumour (UDP) rather than push-pull.
    public var rumourShare: Double
    /// When the run stopped (everything settled, or the limit).
    public var endedAt: Double
}
