import ArgumentParser
import OTAMeshGossip
import OTAMeshSimulation

/// `otamesh lab simulate`: runs the gossip simulator (a deterministic discrete-event simulation
/// over the real GossipNode, no sockets) and prints one fixed-width table per experiment. The
/// same options and seed always print the same bytes on stdout; wall times go to stderr.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate the gossip mesh: dissemination, failure detection, partitions, a staged rollout.",
        discussion: """
            Every node runs the real gossip core (SWIM + Lifeguard + replicated records), started \
            converged from one shared membership snapshot; the gossip-only model switches its \
            probing off. A round is one gossip interval (200 ms). Build with -c release for \
            N ≥ 1,000. See docs/benchmarks.md, "Gossip simulator". The rollout experiment runs the \
            real rollout core on every gateway over a compact replication model (docs/benchmarks.md, \
            "Rollout simulator"); it is not part of `all`.
            """)

    enum Experiment: String, ExpressibleByArgument, CaseIterable {
        case dissemination, failure, partition, rollout, all
    }

    enum ModelChoice: String, ExpressibleByArgument, CaseIterable {
        case auto, full
        case gossipOnly = "gossip-only"
    }

    /// Under loss the full model's views diverge and its state grows with N² (measured: N = 1,000
    /// at 10 % loss in 5 s, 2,000 in 150 s and 1 GiB, 10,000 not done after 11 min and 6 GiB).
    static let autoFullLossyNodes = 1_000

    func model(nodes: Int, loss: Double) -> SimulationModel {
        switch model {
        case .full: .full
        case .gossipOnly: .gossipOnly
        case .auto: loss == 0 || nodes <= Self.autoFullLossyNodes ? .full : .gossipOnly
        }
    }

    @Option(help: "Node counts, comma-separated.") var nodes = "100,1000"
    @Option(help: "UDP packet loss in percent, comma-separated.") var loss = "0,10"
    @Option(help: "One-way latency (e.g. 1ms).") var latency = "1ms"
    @Option(help: "Latency jitter: latency varies uniformly within ± this.") var jitter = "0.5ms"
    @Option(help: "Seed for every random draw of the run.") var seed: UInt64 = 1
    @Option(help: "dissemination, failure, partition or all.") var experiment: Experiment = .dissemination
    @Option(help: "Failure: length of the false-positive soak (e.g. 120s).") var soak = "120s"
    @Option(help: "Partition: how long the two halves are cut off.") var partition = "20s"
    @Option(help: "Partition: the shell's reconnect to seeds (e.g. 30s), or off.") var rejoin = "30s"
    @Option(help: "Failure and partition run only up to this many nodes (their views diverge, so memory grows with N²).")
    var maxDivergentNodes = 1_000
    @Option(help: "Dissemination: auto (full, but gossip-only under loss above \(Self.autoFullLossyNodes) nodes), full or gossip-only.")
    var model: ModelChoice = .auto
    @Option(help: "counted (fast) or sealed (every packet encoded and sealed, slow).") var path: PacketPath = .counted
    @Option(help: "Rollout: gateways.") var gateways = 1_000
    @Option(help: "Rollout: devices per gateway.") var devices = 100
    @Option(help: "Rollout: members stageDue counts: alive (what the engine passes today) or known.") var stageMembers: StageMembers = .alive
    @Option(help: "Rollout: records rumour carries: all (as built) or marks (commands, halt, stage; the rest by push-pull).") var rumour: RumourRecords = .all
    @Flag(help: "One JSON object per result, one per line, instead of tables.") var json = false

    func run() throws {
        let counts = try Self.list(nodes, "--nodes", expecting: "whole numbers ≥ 2") { Int($0).flatMap { $0 >= 2 ? $0 : nil } }
        let losses = try Self.list(loss, "--loss", expecting: "percentages from 0 to 100") { Double($0).flatMap { (0...100).contains($0) ? $0 / 100 : nil } }
        let network = (latency: try Self.duration(latency, "--latency"), jitter: try Self.duration(jitter, "--jitter"))
        let soakSeconds = try Self.duration(soak, "--soak")
        let partitionSeconds = try Self.duration(partition, "--partition")
        let rejoinSeconds = rejoin == "off" ? nil : try Self.duration(rejoin, "--rejoin")
        if experiment == .rollout {
            try runRollout(losses: losses)
            return
        }
        let experiments: [Experiment] = experiment == .all ? [.dissemination, .failure, .partition] : [experiment]

        for (index, kind) in experiments.enumerated() {
            if !json {
                if index > 0 { Output.out("") }
                Output.out(title(kind, network: network, soak: soakSeconds, partition: partitionSeconds, rejoin: rejoinSeconds))
            }
            var printedHeader = false
            var skipped: [Int] = []
            for count in counts {
                if kind != .dissemination, count > maxDivergentNodes {
                    skipped.append(count)
                    continue
                }
                for lossRate in losses {
                    let configuration = SimulationConfiguration(
                        nodes: count, seed: seed, model: model(nodes: count, loss: lossRate),
                        network: NetworkConditions(loss: lossRate, latency: network.latency, jitter: network.jitter),
                        path: path, rejoinInterval: rejoinSeconds)
                    let clock = ContinuousClock()
                    let started = clock.now
                    let lines: [String]
                    switch kind {
                    case .dissemination:
                        let result = DisseminationExperiment(configuration: configuration).run()
                        lines = json ? [Output.jsonLine(Tagged(experiment: "dissemination", result: result))] : SimulationTable.dissemination([result])
                    case .failure:
                        let result = FailureDetectionExperiment(configuration: configuration, soak: soakSeconds).run()
                        lines = json ? [Output.jsonLine(Tagged(experiment: "failure", result: result))] : SimulationTable.failureDetection([result])
                    case .partition:
                        let result = PartitionExperiment(configuration: configuration, duration: partitionSeconds).run()
                        lines = json ? [Output.jsonLine(Tagged(experiment: "partition", result: result))] : SimulationTable.partition([result])
                    case .rollout, .all:
                        lines = []
                    }
                    Output.err("simulate \(kind.rawValue) N=\(count) loss=\(lossRate * 100)%: wall \(clock.now - started)")
                    // Tables: the header once, then each row as its result comes (fixed widths).
                    for (number, line) in lines.enumerated() where json || number > 0 || !printedHeader { Output.out(line) }
                    printedHeader = true
                }
            }
            if !json, !skipped.isEmpty {
                Output.out("(not run for N = \(skipped.map(String.init).joined(separator: ", ")): above --max-divergent-nodes \(maxDivergentNodes))")
            }
        }
    }

    func title(_ kind: Experiment, network: (latency: Double, jitter: Double), soak: Double, partition: Double, rejoin: Double?) -> String {
        let net = "latency \(Self.milliseconds(network.latency)) ± \(Self.milliseconds(network.jitter)), seed \(seed), \(path.rawValue) packets"
        switch kind {
        case .dissemination:
            return "Dissemination: node 0 writes one record; round = gossip interval 0.2 s; model full = the whole GossipNode, "
                + "gossip-only = the same with probing off (no failure detection); \(net)"
        case .failure:
            return "Failure detection: \(Int(soak)) s false-positive soak, then the last node crashes; \(net)"
        case .partition:
            let reconnect = rejoin.map { "shell rejoins seeds every \(Int($0)) s" } ?? "no rejoin"
            return "Partition/heal: halves cut off for \(Int(partition)) s, one record written per side; \(reconnect); times from the heal; \(net)"
        case .rollout, .all:
            return ""
        }
    }

    /// One rollout run per loss rate (the scenario of ``RolloutScenario/halting``), then one
    /// table with a column per run.
    func runRollout(losses: [Double]) throws {
        guard gateways >= 10, devices >= 1 else { throw ValidationError("--gateways must be ≥ 10 and --devices ≥ 1") }
        var results: [RolloutSimulationResult] = []
        for lossRate in losses {
            let clock = ContinuousClock()
            let started = clock.now
            var simulation = RolloutSimulation(
                RolloutScenario.halting(
                    gateways: gateways, devicesPerGateway: devices, loss: lossRate, seed: seed,
                    stageMembers: stageMembers, rumour: rumour))
            let result = simulation.run()
            Output.err("simulate rollout G=\(gateways) D=\(devices) loss=\(lossRate * 100)%: wall \(clock.now - started)")
            if json { Output.out(Output.jsonLine(Tagged(experiment: "rollout", result: result))) }
            results.append(result)
        }
        guard !json else { return }
        let scenario = RolloutScenario.halting(gateways: gateways, devicesPerGateway: devices, seed: seed)
        let bad = scenario.badGateways
        let cut =
            scenario.partition.map { "gateways \($0.group.min() ?? 0)…\($0.group.max() ?? 0) cut off from \(Int($0.start)) s to \(Int($0.end)) s" }
            ?? "no partition"
        Output.out(
            "Rollout: stages \(scenario.stages.map(String.init).joined(separator: ",")) %, soak \(scenario.soakSeconds) s, success \(scenario.successPercent) %, "
                + "halt above \(scenario.maxFailures.map(String.init) ?? "—") failures, concurrency \(scenario.concurrency); devices take "
                + "\(Int(scenario.installSeconds.lowerBound))–\(Int(scenario.installSeconds.upperBound)) s; gateways \(bad.lowerBound)…\(bad.upperBound - 1) fail every device; "
                + "\(cut); rumour fanout \(scenario.fanout) every \(scenario.gossipInterval) s, push-pull every \(Int(scenario.pushPullInterval)) s; stageDue counts \(stageMembers.rawValue) members; rumour carries \(rumour == .all ? "every record" : "marks only"); seed \(seed)"
        )
        for line in SimulationTable.rollout(results) { Output.out(line) }
    }

    struct Tagged<Result: Encodable>: Encodable {
        var experiment: String
        var result: Result
    }

    static func list<T>(_ text: String, _ option: String, expecting: String, _ parse: (String) -> T?) throws -> [T] {
        let items = text.split(separator: ",").map { String($0.filter { $0 != " " }) }
        let values = items.compactMap(parse)
        guard !items.isEmpty, values.count == items.count else { throw ValidationError("\(option): cannot read '\(text)' (comma-separated \(expecting))") }
        return values
    }

    /// "1ms", "0.5ms", "2s" or a plain number of seconds.
    static func duration(_ text: String, _ option: String) throws -> Double {
        let (number, scale) = text.hasSuffix("ms") ? (text.dropLast(2), 0.001) : text.hasSuffix("s") ? (text.dropLast(1), 1.0) : (Substring(text), 1.0)
        guard let value = Double(number), value >= 0 else { throw ValidationError("\(option): cannot read '\(text)' as a duration (e.g. 1ms, 30s)") }
        return value * scale
    }

    static func milliseconds(_ seconds: Double) -> String {
        let ms = seconds * 1000
        return (ms == ms.rounded() ? String(Int(ms)) : String(ms)) + " ms"
    }
}

extension PacketPath: ExpressibleByArgument {}
extension StageMembers: ExpressibleByArgument {}
extension RumourRecords: ExpressibleByArgument {}
