/// Failure detection and its false positives, in one run: N converged nodes first soak under
/// the configured loss with nobody failing — every suspicion or death of a live member in that
/// window is a false positive — then the last node crashes and the simulation follows until
/// every live node has declared it dead.
public struct FailureDetectionExperiment: Sendable {
    public var configuration: SimulationConfiguration
    public var warmUp: Double
    /// Simulated seconds of the false-positive soak (0: none).
    public var soak: Double
    /// Give up this long after the crash beyond the maximum suspicion timeout.
    public var grace: Double

    /// Runs the full model whatever `configuration.model` says: failure detection is what it measures.
    public init(configuration: SimulationConfiguration, warmUp: Double = 3, soak: Double = 120, grace: Double = 60) {
        var configuration = configuration
        configuration.model = .full
        self.configuration = configuration
        self.warmUp = warmUp
        self.soak = soak
        self.grace = grace
    }

    public func run() -> FailureDetectionResult {
        var simulation = GossipSimulation(configuration)
        simulation.run(until: warmUp)
        simulation.countingFalsePositives = true
        simulation.run(until: warmUp + soak)
        simulation.countingFalsePositives = false
        let pairs = Double(configuration.nodes * (configuration.nodes - 1))
        let suspectedPairs = simulation.wronglySuspected.count
        let deadPairs = simulation.wronglyDeclaredDead.count

        let victim = configuration.nodes - 1
        let crashedAt = simulation.now
        simulation.crash(node: victim)
        let swim = simulation.nodes[0].swim
        let maxTimeout = swim.suspicionTimeout(confirmations: 0)
        let minTimeout = swim.suspicionTimeout(confirmations: configuration.settings.indirectChecks)
        let end = crashedAt + maxTimeout + grace
        while simulation.now < end, (simulation.detections[victim]?.declaredDeadBy ?? 0) < simulation.liveCount {
            simulation.run(until: min(simulation.now + 0.1, end))
        }
        let detection = simulation.detections[victim]
        let observers = (0..<configuration.nodes).filter { !simulation.crashed[$0] }
        let dead = observers.compactMap { detection?.declaredDeadAt[$0].map { $0 - crashedAt } }.sorted()
        let suspected = observers.compactMap { detection?.suspectedAt[$0].map { $0 - crashedAt } }.sorted()
        let all = dead.count == observers.count
        return FailureDetectionResult(
            nodes: configuration.nodes, lossPercent: configuration.network.loss * 100, seed: configuration.seed,
            firstSuspectedSeconds: suspected.first, firstDeadSeconds: dead.first,
            deadP50Seconds: all ? Measure.quantile(0.5, of: dead) : nil, deadMaxSeconds: all ? dead.last : nil,
            declaredDeadBy: dead.count, observers: observers.count,
            suspicionMinSeconds: minTimeout, suspicionMaxSeconds: maxTimeout,
            boundSeconds: maxTimeout + 3 * configuration.settings.probeInterval,
            soakSeconds: soak, falseSuspectedPairs: suspectedPairs, falseDeadPairs: deadPairs,
            falseSuspectedRate: Double(suspectedPairs) / pairs, falseDeadRate: Double(deadPairs) / pairs)
    }
}

/// One failure-detection measurement; times are seconds from the crash, nil if not reached.
public struct FailureDetectionResult: Sendable, Equatable, Codable {
    public var nodes: Int
    public var lossPercent: Double
    public var seed: UInt64
    /// The first live node to suspect it, and to declare it dead.
    public var firstSuspectedSeconds: Double?
    public var firstDeadSeconds: Double?
    /// Over all live nodes, once every one has declared it dead.
    public var deadP50Seconds: Double?
    public var deadMaxSeconds: Double?
    public var declaredDeadBy: Int
    public var observers: Int
    /// Lifeguard's suspicion timeout at this size, with all and with no confirmations.
    public var suspicionMinSeconds: Double
    public var suspicionMaxSeconds: Double
    /// The bound a detection should meet: the maximum suspicion timeout + 3 probe periods.
    public var boundSeconds: Double
    /// The false-positive soak: (observer, live member) pairs ever suspected / declared dead, and
    /// their fraction of all N × (N − 1) pairs.
    public var soakSeconds: Double
    public var falseSuspectedPairs: Int
    public var falseDeadPairs: Int
    public var falseSuspectedRate: Double
    public var falseDeadRate: Double
}
