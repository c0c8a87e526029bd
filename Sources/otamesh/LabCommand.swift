import ArgumentParser
import Foundation
import OTAMeshLab

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh lab`: many gateways on one machine, each in its own network namespace (see docs/lab.md).
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Run a topology of gateways, devices and an origin in network namespaces (root only).",
        discussion: "Topologies are YAML files (Topologies/*.yaml; schema in docs/lab.md). Nothing touches the host's own network.",
        subcommands: subcommands)

    /// The lab's subcommands; `lab simulate` joins this list.
    static let subcommands: [any ParsableCommand.Type] = [Up.self, Run.self, Soak.self, Down.self, SimulateCommand.self]

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a topology up and keep it up until Ctrl-C or SIGTERM, then tear it down.")

        @OptionGroup var lab: LabOptionsGroup

        @Option(name: .customLong("for"), help: "Tear down after this long at the latest: 30m, 12h (default 7d).")
        var duration: String = "7d"

        func validate() throws {
            guard let seconds = LabDuration.seconds(duration), seconds > 0 else { throw ValidationError("--for expects a duration like 30m or 12h") }
        }

        func run() async throws {
            let (topology, binaries, options, stop) = try lab.prepare()
            let limit = LabDuration.seconds(duration) ?? 604_800
            try await LabOptionsGroup.withLab("otamesh lab up", topology, binaries, options, stop) { runner in
                for line in runner.directory { Output.out(line) }
                Output.out("lab \(topology.name) is up (Ctrl-C or SIGTERM tears it down)")
                runner.hold(limit: limit)
                return true
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a topology up, run its scenario, print a summary and tear down (exit 0 only if every step passed).")

        @OptionGroup var lab: LabOptionsGroup

        @Option(help: "Give the scenario at most this long: seconds, or 10m, 1h.")
        var timeout: String = "600"

        @Option(help: "After the scenario, keep the lab up this long (Ctrl-C ends it sooner), to look around, e.g. in the dashboard: 10m.")
        var hold: String?

        func validate() throws {
            guard let seconds = LabDuration.seconds(timeout), seconds > 0 else { throw ValidationError("--timeout expects seconds or a duration like 10m") }
            if let hold, LabDuration.seconds(hold).map({ $0 > 0 }) != true { throw ValidationError("--hold expects seconds or a duration like 10m") }
        }

        func run() async throws {
            let (topology, binaries, options, stop) = try lab.prepare()
            let limit = LabDuration.seconds(timeout) ?? 600
            guard !topology.scenario.isEmpty else {
                Output.err("otamesh lab run: \(topology.source) has no scenario")
                throw ExitCode(2)
            }
            let holding = hold.flatMap(LabDuration.seconds)
            try await LabOptionsGroup.withLab("otamesh lab run", topology, binaries, options, stop) { runner in
                let passed = runner.runScenario(timeout: limit).passed
                if let holding {
                    Output.out("holding the lab for \(LabDuration.text(holding)) (Ctrl-C tears it down now)")
                    runner.hold(limit: holding)
                }
                return passed
            }
        }
    }

    struct Soak: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Bring a topology up and run a seeded schedule of faults and rollouts for a set time, checking the soak's invariants; print a summary table, tear down (exit 0 only if every invariant held).",
            discussion:
                "Faults: SIGKILL and restart of gateways, a minority partitioned off and healed, 10-30 % loss on the backbone, the last gateway's disk filled, device groups corrupting their flash (docs/lab.md, section Soak)."
        )

        @OptionGroup var lab: LabOptionsGroup

        @Option(help: "How long the faults and rollouts run: 10m, 1h (default 10m).")
        var duration: String = "10m"

        @Option(help: "Seed of the fault schedule (the same seed, the same schedule; default 1).")
        var seed: UInt64 = 1

        func validate() throws {
            guard let seconds = LabDuration.seconds(duration), seconds >= 120 else {
                throw ValidationError("--duration expects a duration of at least 2m, like 10m or 1h")
            }
        }

        func run() async throws {
            let (topology, binaries, options, stop) = try lab.prepare()
            let seconds = LabDuration.seconds(duration) ?? 600
            let seed = self.seed
            guard topology.origin?.releases.isEmpty == false, !topology.devices.isEmpty else {
                Output.err("otamesh lab soak: \(topology.source) needs origin releases and devices for its rollouts (see Topologies/soak-campus-32.yaml)")
                throw ExitCode(2)
            }
            try await LabOptionsGroup.withLab("otamesh lab soak", topology, binaries, options, stop) { $0.runSoak(seconds: seconds, seed: seed).passed }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove what a lab left behind: its runner, processes in its namespaces, the namespaces.")

        @Argument(help: "The topology YAML file whose lab to remove.")
        var topology: String?

        @Flag(help: "Remove every lab (every namespace named otl-…).")
        var all = false

        @Option(help: "The lab's state directory (default /tmp/otamesh-lab/NAME).")
        var state: String?

        func validate() throws {
            guard (topology != nil) != all else { throw ValidationError("give a topology file or --all") }
        }

        func run() async throws {
            try LabOptionsGroup.requireRoot()
            let prefix: String
            var roots: [String] = state.map { [$0] } ?? []
            if let path = topology {
                let loaded = try LabOptionsGroup.load(path)
                prefix = (try? LabLayout(loaded).prefix) ?? LabLayout.namespacePrefix
                if state == nil { roots.append(LabPaths.defaultRoot(for: loaded)) }
            } else {
                prefix = LabLayout.namespacePrefix
                let parent = LabPaths.defaultParent
                roots += ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).map { "\(parent)/\($0)" }
            }
            let summary = LabCleanup.down(prefix: prefix, stateRoots: roots, output: { Output.out($0) })
            if summary.namespacesRemoved.isEmpty && summary.runnersStopped == 0 {
                Output.out("nothing to clean up (no \(prefix)* namespaces, no running lab)")
            } else {
                Output.out(
                    "cleaned up: \(summary.runnersStopped) runners stopped, \(summary.processesKilled) processes killed, "
                        + "\(summary.namespacesRemoved.count) namespaces removed")
            }
        }
    }
}

/// What `lab up` and `lab run` share: the topology, the state directory and the checks before starting.
struct LabOptionsGroup: ParsableArguments {
    @Argument(help: "The topology YAML file (see Topologies/).")
    var topology: String

    @Option(help: "State directory: logs, data, the run record (default /tmp/otamesh-lab/NAME).")
    var state: String?

    @Flag(help: "Print every command the lab runs.")
    var verbose = false

    @Flag(help: "Narrate rollouts for someone watching: each stage, progress per gateway, the automatic halt and how fast it spread.")
    var narrate = false

    /// Until the agent has the mesh flags: start gateways without gossip, keyring, discovery and joins.
    @Flag(name: .customLong("without-mesh"), help: ArgumentHelp(visibility: .hidden))
    var withoutMesh = false

    /// Brings the lab up on the lab thread, runs `body` (whether it passed), tears down; exit 1
    /// when the lab did not come up or `body` did not pass. `lab up`, `run` and `soak` share it.
    static func withLab(
        _ command: String, _ topology: Topology, _ binaries: LabBinaries, _ options: LabOptions, _ stop: StopSignal,
        _ body: @escaping @Sendable (LabRunner) -> Bool
    ) async throws {
        let status = await LabThread.run { () -> Int32 in
            let runner: LabRunner
            do {
                runner = try LabRunner(topology: topology, binaries: binaries, options: options, stop: stop, print: { Output.out($0) })
                try runner.up()
            } catch {
                Output.err("\(command): \(error)")
                return 1
            }
            let passed = body(runner)
            runner.tearDown()
            return passed ? 0 : 1
        }
        if status != 0 { throw ExitCode(status) }
    }

    static func requireRoot() throws {
        guard geteuid() == 0 else {
            Output.err("otamesh lab: must run as root (it creates network namespaces, veths and bridges)")
            throw ExitCode(2)
        }
    }

    static func load(_ path: String) throws -> Topology {
        do { return try TopologyFile.load(path: path) } catch {
            Output.err("otamesh lab: \(error)")
            throw ExitCode(2)
        }
    }

    /// Root check, topology, binaries (this executable and otamesh-devicesim next to it), and
    /// the signal handling that turns Ctrl-C/SIGTERM into a teardown.
    func prepare() throws -> (Topology, LabBinaries, LabOptions, StopSignal) {
        try Self.requireRoot()
        let topology = try Self.load(self.topology)
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let directory = (executable as NSString).deletingLastPathComponent
        let binaries = LabBinaries(otamesh: executable, devicesim: "\(directory)/otamesh-devicesim")
        guard FileManager.default.isExecutableFile(atPath: binaries.devicesim) else {
            Output.err("otamesh lab: \(binaries.devicesim) is missing (build it: swift build --product otamesh-devicesim)")
            throw ExitCode(2)
        }
        let root = state.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? LabPaths.defaultRoot(for: topology)
        let stop = StopSignal()
        stop.install()
        return (topology, binaries, LabOptions(stateRoot: root, mesh: !withoutMesh, verbose: verbose, narrate: narrate), stop)
    }
}

/// Runs the lab on a thread of its own: the lab's children get a parent-death signal tied to
/// the thread that started them, so that thread must live until teardown is done.
enum LabThread {
    static func run(_ body: @escaping @Sendable () -> Int32) async -> Int32 {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.name = "otamesh-lab"
            thread.start()
        }
    }
}
