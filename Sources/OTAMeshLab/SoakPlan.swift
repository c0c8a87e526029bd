import OTAMeshCommon
import OTAMeshSimulation

/// What a soak does and when: a seeded, reproducible schedule of faults and rollouts over a
/// lab (`otamesh lab soak`, `make soak`). Pure: the same inputs and seed give the same plan.
///
/// From one minute in until the quiet tail (the last quarter, at most 3 minutes) a fault starts
/// every 15–35 s: a gateway SIGKILLed (restarted 5–30 s later; at most an eighth of the gateways
/// down at once), a minority partitioned off (healed 20–60 s later; one partition at a time),
/// 10–30 % loss on the backbone (restored 30–90 s later), the disk gateway's disk filled (freed
/// 30–60 s later), a device group corrupting its flash (back to healthy 60–120 s later). Every
/// two minutes a staged rollout starts, alternating targets; every third is halted by an admin
/// 40 s later. Every fault ends before the quiet tail, in which the mesh must settle.
public struct SoakPlan: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case kill(String)
        case restart(String)
        case partition(minority: [String])
        case heal
        case loss(network: String, percent: Double)
        case fillDisk(String)
        case freeDisk(String)
        case deviceFault(group: String)
        case deviceRestore(group: String)
        case rollout(name: String, target: String)
        case halt(name: String)

        public var summary: String {
            switch self {
            case .kill(let gateway): "SIGKILL \(gateway)"
            case .restart(let gateway): "restart \(gateway)"
            case .partition(let minority): "partition [\(minority.joined(separator: ","))] from the rest"
            case .heal: "heal"
            case .loss(let network, let percent): "loss \(network) \(LabDuration.number(percent))%"
            case .fillDisk(let gateway): "fill \(gateway)'s disk"
            case .freeDisk(let gateway): "free \(gateway)'s disk"
            case .deviceFault(let group): "\(group): corrupt-flash"
            case .deviceRestore(let group): "\(group): healthy"
            case .rollout(let name, let target): "rollout \(name) → \(target)"
            case .halt(let name): "halt \(name)"
            }
        }
    }

    public struct Event: Sendable, Equatable {
        /// Seconds from the start of the soak.
        public var at: Double
        public var action: Action
    }

    public struct Inputs: Sendable, Equatable {
        public var seconds: Double
        public var gateways: [String]
        /// The network whose loss changes.
        public var network: String
        /// Its loss outside a loss fault (percent).
        public var baselineLoss: Double
        public var deviceGroups: [String]
        /// Rollout targets, used in turn.
        public var targets: [String]
        /// The gateway whose data directory sits on a small filesystem that can be filled.
        public var diskGateway: String?

        public init(
            seconds: Double, gateways: [String], network: String, baselineLoss: Double, deviceGroups: [String], targets: [String],
            diskGateway: String?
        ) {
            self.seconds = seconds
            self.gateways = gateways
            self.network = network
            self.baselineLoss = baselineLoss
            self.deviceGroups = deviceGroups
            self.targets = targets
            self.diskGateway = diskGateway
        }
    }

    public let events: [Event]
    /// When the quiet tail begins: every fault has ended by then.
    public let quietFrom: Double

    public init(_ inputs: Inputs, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let tail = min(180, inputs.seconds / 4)
        let quiet = max(60, inputs.seconds - tail)
        var events: [Event] = []
        func at(_ time: Double, _ action: Action) { events.append(Event(at: min(time, quiet), action: action)) }

        // Rollouts: every two minutes from the first minute, targets in turn.
        var rollouts = 0
        var time = 60.0
        while time < quiet, !inputs.targets.isEmpty {
            rollouts += 1
            let name = "s\(rollouts)"
            at(time, .rollout(name: name, target: inputs.targets[(rollouts - 1) % inputs.targets.count]))
            if rollouts % 3 == 0, time + 40 < quiet { at(time + 40, .halt(name: name)) }
            time += 120
        }

        // Faults, each undone before the quiet tail.
        var downUntil: [String: Double] = [:]
        var partitionUntil = 0.0
        var lossUntil = 0.0
        var diskUntil = 0.0
        var faultyUntil: [String: Double] = [:]
        let maxDown = max(1, inputs.gateways.count / 8)
        time = 60 + random.uniform(15, 35)
        while time < quiet - 5 {
            let roll = random.uniform(0, 100)
            let up = inputs.gateways.filter { (downUntil[$0] ?? 0) <= time }
            if roll < 35, inputs.gateways.count - up.count < maxDown, let victim = random.pick(up) {
                let back = min(quiet, time + random.uniform(5, 30))
                at(time, .kill(victim))
                at(back, .restart(victim))
                downUntil[victim] = back + 1
            } else if roll < 55, partitionUntil <= time, inputs.gateways.count >= 3 {
                let size = 1 + Int(random.uniform(0, Double(max(1, inputs.gateways.count / 4))))
                var pool = inputs.gateways
                var minority: [String] = []
                while minority.count < min(size, inputs.gateways.count / 2), let chosen = random.pick(pool) {
                    minority.append(chosen)
                    pool.removeAll { $0 == chosen }
                }
                let heal = min(quiet, time + random.uniform(20, 60))
                at(time, .partition(minority: minority.sorted()))
                at(heal, .heal)
                partitionUntil = heal + 1
            } else if roll < 75, lossUntil <= time {
                let percent = (random.uniform(10, 30)).rounded()
                let restore = min(quiet, time + random.uniform(30, 90))
                at(time, .loss(network: inputs.network, percent: percent))
                at(restore, .loss(network: inputs.network, percent: inputs.baselineLoss))
                lossUntil = restore + 1
            } else if roll < 85, let disk = inputs.diskGateway, diskUntil <= time {
                let free = min(quiet, time + random.uniform(30, 60))
                at(time, .fillDisk(disk))
                at(free, .freeDisk(disk))
                diskUntil = free + 1
            } else if let group = random.pick(inputs.deviceGroups.filter { (faultyUntil[$0] ?? 0) <= time }) {
                let healthy = min(quiet, time + random.uniform(60, 120))
                at(time, .deviceFault(group: group))
                at(healthy, .deviceRestore(group: group))
                faultyUntil[group] = healthy + 1
            }
            time += random.uniform(15, 35)
        }
        // Stable by time: actions at the same moment keep the order they were planned in.
        self.events = events.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
        quietFrom = quiet
    }

    /// "4 device faults, 6 kills, …" (for the summary lines).
    public var tally: String { counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") }

    /// How many events of each kind (for the summary).
    public var counts: [String: Int] {
        var counts: [String: Int] = [:]
        for event in events {
            let kind =
                switch event.action {
                case .kill: "kills"
                case .restart: "restarts"
                case .partition: "partitions"
                case .heal: "heals"
                case .loss: "loss changes"
                case .fillDisk: "disk fills"
                case .freeDisk: "disk frees"
                case .deviceFault: "device faults"
                case .deviceRestore: "device restores"
                case .rollout: "rollouts"
                case .halt: "halts"
                }
            counts[kind, default: 0] += 1
        }
        return counts
    }
}

extension RandomNumberGenerator {
    /// Uniform in [low, high).
    mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + Double(next() >> 11) * 0x1.0p-53 * (high - low)
    }

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int(next() % UInt64(items.count))]
    }
}
