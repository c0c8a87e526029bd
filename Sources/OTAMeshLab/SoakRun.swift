import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a soak found.
public struct SoakReport: Sendable {
    public var ledger: SoakLedger
    public var passed: Bool { ledger.passed }
}

/// The soak's state while it runs (the runner's thread only).
final class SoakState {
    var ledger = SoakLedger()
    /// Per gateway, the samples of its current process (a restart begins a new series); the
    /// finished series of killed processes are kept too.
    var samples: [String: SoakLedger.Samples] = [:]
    var finishedSamples: [(gateway: String, samples: SoakLedger.Samples)] = []
    var minority: [String] = []
    var stagesAtPartition: [String: Int] = [:]
    var diskMount: String?
    var filler: String?
    var log: [String] = []
    var rolloutStartsFailed = 0
}

extension LabRunner {
    /// Runs a soak of `seconds` on the lab already up: the plan's faults and rollouts, the
    /// invariants checked all along, and a summary table. Returns the report (the lab stays up;
    /// the caller tears it down).
    public func runSoak(seconds: Double, seed: UInt64) -> SoakReport {
        let state = SoakState()
        let gateways = topology.gateways.map(\.name)
        let network = topology.networks.first { $0.name == "backbone" } ?? topology.networks[0]
        let disk = topology.gateways.last { !$0.upstream }?.name
        let targets = topology.origin?.releases.map(\.path) ?? []
        let plan = SoakPlan(
            SoakPlan.Inputs(
                seconds: seconds, gateways: gateways, network: network.name,
                baselineLoss: network.shape.lossPercent ?? 0, deviceGroups: topology.devices.map(\.name),
                targets: targets, diskGateway: disk), seed: seed)
        print("soak: \(LabDuration.text(seconds)), seed \(seed), \(gateways.count) gateways; plan: \(plan.tally); quiet from \(Int(plan.quietFrom))s")

        do {
            _ = try wait(for: .converged, timeout: 240)
            if let disk { try mountSmallDisk(disk, state: state) }
        } catch {
            state.ledger.check(.membershipAgrees, false, "the lab did not converge before the soak: \(error)")
            return finishSoak(state, plan: plan, seconds: seconds, seed: seed)
        }
        let start = Date()
        var lastSample = Date.distantPast
        // Until `time`: rollouts sampled (the halt check), a minority watched, memory every 10 s.
        func observe(until time: Double) {
            while Date().timeIntervalSince(start) < time, stop.requested == nil {
                sampleRollouts()
                watchMinority(state)
                if Date().timeIntervalSince(lastSample) >= 10 {
                    sampleProcesses(state, at: Date().timeIntervalSince(start))
                    lastSample = Date()
                }
                usleep(1_000_000)
            }
        }
        for event in plan.events {
            observe(until: event.at)
            if stop.requested != nil { break }
            let line = String(format: "[%6.1fs] ", Date().timeIntervalSince(start)) + event.action.summary
            let detail = perform(event.action, state: state)
            print(line + (detail.isEmpty ? "" : ": \(detail)"))
            state.log.append(line + (detail.isEmpty ? "" : ": \(detail)"))
            for exit in supervisor.unexpectedExits() where topology.gateway(named: exit.label) != nil {
                state.ledger.check(.noCrash, false, "\(exit.label) exited with status \(exit.status) at \(Int(Date().timeIntervalSince(start)))s")
            }
        }
        // The quiet tail: until the planned end, then settle.
        observe(until: seconds)
        settle(state)
        return finishSoak(state, plan: plan, seconds: seconds, seed: seed)
    }

    /// Carries out one planned action; returns a detail for its line.
    func perform(_ action: SoakPlan.Action, state: SoakState) -> String {
        do {
            switch action {
            case .kill(let gateway):
                guard supervisor.isRunning(gateway) else { return "not running; skipped" }
                let before = committedBlobs(ofRunning: gateway)
                _ = try perform(.kill(gateway), remaining: 30)
                retireSamples(gateway, state: state)
                return checkStoreAfterKill(gateway, before: before, state: state)
            case .restart(let gateway):
                guard !supervisor.isRunning(gateway) else { return "already running" }
                _ = try perform(.start(gateway), remaining: 90)
                return ""
            case .partition(let minority):
                let rest = topology.gateways.map(\.name).filter { !minority.contains($0) }
                sampleRollouts()
                let highest = highestStages()
                let due = stagesDue(highest)
                state.minority = minority
                _ = try perform(.partition([minority, rest]), remaining: 30)
                state.stagesAtPartition = SoakLedger.minorityLimit(highest: highest, dueAt: due, cutComplete: Date().timeIntervalSince1970)
                return "stages then: " + highest.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    + "; may reach: "
                    + state.stagesAtPartition.filter { highest[$0.key] != $0.value }.sorted { $0.key < $1.key }
                    .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            case .heal:
                watchMinority(state)
                state.minority = []
                _ = try perform(.heal, remaining: 30)
                return ""
            case .loss(let network, let percent):
                return try perform(.link(network: network, .loss(percent)), remaining: 30)
            case .fillDisk(let gateway):
                return try fillDisk(gateway, state: state)
            case .freeDisk:
                if let filler = state.filler { unlink(filler) }
                state.filler = nil
                return ""
            case .deviceFault(let group):
                return try perform(.devices(group: group, faults: [.corruptFlash], version: nil), remaining: 30)
            case .deviceRestore(let group):
                return try perform(.devices(group: group, faults: [], version: nil), remaining: 30)
            case .rollout(let name, let target):
                let at = runningGateways.filter { !state.minority.contains($0) }.first ?? runningGateways.first ?? ""
                let hardware = target.split(separator: "/").first.map(String.init) ?? "esp32"
                let spec = RolloutSpec(
                    name: name, target: target, select: "hardware=\(hardware)", stages: [10, 50, 100], soak: 5,
                    success: nil, maxFailures: ["25%"], minFinished: 1, concurrency: 4, deviceTimeout: 120,
                    at: at, signers: .admins(LabAdmin.trusted))
                return try perform(.rollout(spec), remaining: 60)
            case .halt(let name):
                guard rollouts[name] != nil, let at = runningGateways.filter({ !state.minority.contains($0) }).last else { return "not started; skipped" }
                return try perform(.halt(name, at: at, reason: "soak: an admin halts"), remaining: 30)
            }
        } catch {
            if case .rollout = action { state.rolloutStartsFailed += 1 }
            return "failed: \(error)"
        }
    }

    /// The blobs a running gateway lists as committed (its admin API), or nil if it did not answer.
    func committedBlobs(ofRunning gateway: String) -> Set<String>? {
        guard let body = adminGet([gateway], "/api/v1/cache").first ?? nil,
            let entries = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]]
        else { return nil }
        return Set(entries.compactMap { $0["sha256"] as? String })
    }

    /// After a SIGKILL: the store verifies, and every blob committed before the kill is there.
    func checkStoreAfterKill(_ gateway: String, before: Set<String>?, state: SoakState) -> String {
        let data = paths.dataDirectory(gateway)
        let verify = try? shell.run(Invocation([launches.binaries.otamesh, "cache", "verify", "--data-dir", data], mayFail: true), timeout: 120)
        let verified = verify?.status == 0
        state.ledger.check(
            .storeVerifies, verified,
            "\(gateway): \(verify.map { ($0.errors + $0.output).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "verify timed out")")
        let listing = try? shell.run(Invocation([launches.binaries.otamesh, "cache", "ls", "--data-dir", data, "--json"], mayFail: true), timeout: 60)
        let after = Set(
            (listing?.output ?? "").split(separator: "\n").compactMap { line -> String? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["sha256"] as? String
            })
        if let before {
            let lost = before.subtracting(after)
            state.ledger.check(.nothingLost, lost.isEmpty, "\(gateway): \(lost.count) committed blobs gone after SIGKILL")
        }
        return "\(verify?.output.trimmingCharacters(in: .whitespacesAndNewlines) ?? "verify failed"); \(after.count) blobs"
    }

    /// The highest stage any gateway shows per rollout.
    func highestStages() -> [String: Int] {
        var stages: [String: Int] = [:]
        for (name, track) in rollouts {
            stages[name] = track.latest.values.map(\.stage).filter { $0 < 1000 }.max() ?? -1
        }
        return stages
    }

    /// When the highest stage of each rollout had soaked (its earliest start at any gateway plus
    /// the plan's soak, Unix seconds), for rollouts with a stage after it.
    func stagesDue(_ highest: [String: Int]) -> [String: Double] {
        var due: [String: Double] = [:]
        for (name, track) in rollouts {
            guard let stage = highest[name] else { continue }
            let at = track.latest.values.filter { $0.stage == stage && $0.stage < $0.stages.count - 1 }
            guard let since = at.compactMap(\.stageSince).min(), let soak = at.compactMap({ $0.plan?.soak }).first else { continue }
            due[name] = Double(since) / 1000 + Double(soak)
        }
        return due
    }

    /// While a minority is cut off, none of its gateways may show a stage past what any
    /// gateway had when the partition began.
    func watchMinority(_ state: SoakState) {
        guard !state.minority.isEmpty else { return }
        for gateway in state.minority where supervisor.isRunning(gateway) {
            var now: [String: Int] = [:]
            for (name, track) in rollouts { if let stage = track.latest[gateway]?.stage, stage < 1000 { now[name] = stage } }
            let advanced = SoakLedger.minorityAdvanced(atPartition: state.stagesAtPartition, now: now)
            state.ledger.check(
                .minorityStill, advanced.isEmpty,
                "\(gateway) (cut off) advanced \(advanced.joined(separator: ",")) past stage \(advanced.map { state.stagesAtPartition[$0] ?? -1 })")
        }
    }

    /// RSS and open descriptors of every running gateway, from /proc (host namespace: reads only).
    func sampleProcesses(_ state: SoakState, at time: Double) {
        for gateway in topology.gateways.map(\.name) {
            guard let pid = supervisor.child(gateway)?.process.pid, supervisor.isRunning(gateway) else { continue }
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            guard
                let rss = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
                    .flatMap({ Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") })
            else { continue }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
            state.samples[gateway, default: SoakLedger.Samples()].points.append((time, rss, fds))
        }
    }

    func retireSamples(_ gateway: String, state: SoakState) {
        if let series = state.samples.removeValue(forKey: gateway) { state.finishedSamples.append((gateway, series)) }
    }

    /// Moves the disk gateway's data directory onto a 96 MiB tmpfs (stop, copy, mount, start):
    /// the disk the soak fills.
    func mountSmallDisk(_ gateway: String, state: SoakState) throws(LabError) {
        let data = paths.dataDirectory(gateway)
        supervisor.stop(gateway, grace: 30)
        let saved = data + ".before-tmpfs"
        try shell.run(Invocation(["rm", "-rf", saved]))
        try shell.run(Invocation(["mv", data, saved]))
        try shell.run(Invocation(["mkdir", "-p", data]))
        try shell.run(Invocation(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "otamesh-soak", data]))
        state.diskMount = data
        try shell.run(Invocation(["cp", "-a", saved + "/.", data + "/"]))
        guard let launch = launches.gateway(gateway) else { throw LabError.state("no launch for \(gateway)") }
        try supervisor.start(launch)
        try supervisor.waitReady([launch], timeout: 60)
        print("soak: \(gateway)'s data directory is on a 96 MiB tmpfs (the disk that fills)")
    }

    /// Fills the disk gateway's filesystem to the last byte.
    func fillDisk(_ gateway: String, state: SoakState) throws(LabError) -> String {
        guard let mount = state.diskMount else { return "no small disk; skipped" }
        var info = statvfs()
        guard statvfs(mount, &info) == 0 else { return "statvfs failed; skipped" }
        let free = Int(info.f_bavail) * Int(info.f_frsize)
        let filler = "\(mount)/soak-filler"
        _ = try shell.run(Invocation(["fallocate", "-l", "\(max(4096, free))", filler], mayFail: true))
        state.filler = filler
        return "\(free / 1_048_576) MiB taken"
    }

    /// After the last fault: everyone converges, every rollout's state agrees everywhere.
    func settle(_ state: SoakState) {
        if let filler = state.filler { unlink(filler) }
        for gateway in topology.gateways.map(\.name) where !supervisor.isRunning(gateway) {
            _ = try? perform(.start(gateway), remaining: 90)
        }
        do {
            _ = try wait(for: .converged, timeout: 300)
            state.ledger.check(.membershipAgrees, true, "")
        } catch {
            state.ledger.check(.membershipAgrees, false, "\(error)")
        }
        var disagreement = "not checked"
        let agreed = Deadline.poll(timeout: 180, interval: 2) {
            sampleRollouts()
            disagreement = rolloutDisagreement()
            return disagreement.isEmpty || stop.requested != nil
        }
        state.ledger.check(.rolloutsAgree, agreed && disagreement.isEmpty, disagreement)
    }

    /// "" when every running gateway reports each rollout in the same mode and stage.
    func rolloutDisagreement() -> String {
        let running = runningGateways
        for name in rolloutOrder {
            guard let track = rollouts[name] else { continue }
            let views = running.map { gateway in track.latest[gateway].map { "\($0.mode)@\($0.stage)" } ?? "missing" }
            let distinct = Set(views)
            if distinct.count > 1 {
                let tally = distinct.sorted().map { view in "\(view) ×\(views.filter { $0 == view }.count)" }
                return "\(name): " + tally.joined(separator: ", ")
            }
        }
        return ""
    }

    /// The end: memory and descriptor verdicts, crashes, the halt check, every store verified
    /// after a clean stop; the table printed and written beside the lab's logs.
    func finishSoak(_ state: SoakState, plan: SoakPlan, seconds: Double, seed: UInt64) -> SoakReport {
        // One check per device outcome of a halted rollout; each start after its gateway knew
        // the halt is a violation.
        let problems = finishRollouts()
        let judged = rollouts.values.filter { $0.halt != nil }.reduce(0) { $0 + $1.outcomes.count }
        for problem in problems { state.ledger.check(.haltRespected, false, problem) }
        for _ in 0..<max(0, judged - problems.count) { state.ledger.check(.haltRespected, true, "") }
        for exit in supervisor.unexpectedExits() where topology.gateway(named: exit.label) != nil {
            state.ledger.check(.noCrash, false, "\(exit.label) exited with status \(exit.status)")
        }
        state.ledger.check(.noCrash, true, "")
        var memory: [String] = []
        let series = state.finishedSamples + state.samples.map { ($0.key, $0.value) }
        for (gateway, samples) in series {
            if let growth = SoakLedger.rssGrowth(samples) {
                state.ledger.check(.rssFlat, growth.flat, "\(gateway): RSS \(growth.fromKiB / 1024) → \(growth.toKiB / 1024) MiB")
                memory.append("\(gateway) \(growth.fromKiB / 1024)→\(growth.toKiB / 1024) MiB")
            }
            if let fds = SoakLedger.fdsBounded(samples, limit: 1024) {
                state.ledger.check(.fdsBounded, fds.flat, "\(gateway): up to \(fds.max) descriptors, last \(samples.points.last?.fds ?? 0)")
            }
        }
        // Every store once more, after a clean stop of everything.
        supervisor.stopAll(grace: 30)
        for gateway in topology.gateways.map(\.name) {
            let verify = try? shell.run(
                Invocation(
                    [launches.binaries.otamesh, "cache", "verify", "--data-dir", paths.dataDirectory(gateway)],
                    mayFail: true), timeout: 120)
            state.ledger.check(.storeVerifies, verify?.status == 0, "\(gateway) at the end: \(verify?.errors ?? "timed out")")
        }
        if let mount = state.diskMount { _ = try? shell.run(Invocation(["umount", mount], mayFail: true)) }

        var lines = [
            "## Soak: \(topology.name), \(LabDuration.text(seconds)), seed \(seed)", "",
            "\(topology.gateways.count) gateways, \(topology.devices.reduce(0) { $0 + $1.count }) devices; \(plan.tally)"
                + (state.rolloutStartsFailed > 0 ? "; \(state.rolloutStartsFailed) rollout starts refused" : "") + ".", "",
        ]
        lines += state.ledger.table()
        if !memory.isEmpty { lines += ["", "RSS (after warm-up → end): " + memory.sorted().prefix(40).joined(separator: ", ")] }
        lines += ["", "Result: " + (state.ledger.passed ? "PASS" : "FAIL")]
        for line in lines { print(line) }
        let summary = "\(paths.root)/soak-summary.md"
        try? (lines + ["", "Events:"] + state.log).joined(separator: "\n").write(toFile: summary, atomically: true, encoding: .utf8)
        print("soak summary and event log: \(summary)")
        return SoakReport(ledger: state.ledger)
    }
}
