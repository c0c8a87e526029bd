import Foundation
import OTAMeshRollout

/// The rollout steps of a scenario: every command goes through the real `otamesh rollout` CLI
/// inside a gateway's namespace, with the lab's admin keys and the gateway's admin token; the
/// runner watches every gateway's `GET /api/v1/rollouts?outcomes=1` while rollouts exist.
extension LabRunner {
    /// Runs `otamesh rollout …` at each gateway concurrently.
    func rolloutCLI(_ arguments: [String], at gateways: [String], signer: LabAdmin?, unsigned: Bool = false) throws(LabError) -> [CommandResult?] {
        let invocations = gateways.compactMap { launches.rolloutCommand(arguments, at: $0, signer: signer, unsigned: unsigned) }
        return try shell.runConcurrently(invocations, timeout: 30)
    }

    /// One CLI call that must succeed; its output.
    func rolloutCLIMustSucceed(_ arguments: [String], at gateway: String, signer: LabAdmin?) throws(LabError) -> String {
        let result = try rolloutCLI(arguments, at: [gateway], signer: signer).first ?? nil
        guard let result else { throw LabError.commandTimedOut(command: "otamesh rollout \(arguments.first ?? "") at \(gateway)", seconds: 30) }
        guard result.status == 0 else {
            throw LabError.state(
                "otamesh rollout \(arguments.first ?? "") at \(gateway) failed (exit \(result.status)): "
                    + Self.oneLine(result.errors.isEmpty ? result.output : result.errors))
        }
        return result.output
    }

    static func oneLine(_ text: String) -> String {
        String(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").joined(separator: " | ").prefix(300))
    }

    func tracked(_ name: String) throws(LabError) -> RolloutTrack {
        guard let track = rollouts[name] else { throw LabError.state("rollout \(name) was not started") }
        return track
    }

    // MARK: Steps

    func startRollout(_ spec: RolloutSpec) throws(LabError) -> String {
        let start = ["start"] + spec.startArguments
        switch spec.signers {
        case .nobody:
            return try expectRefusal(start, signer: nil, unsigned: true, what: "an unsigned plan")
        case .admins(let admins) where admins.contains(.rogue):
            return try expectRefusal(start, signer: .rogue, unsigned: false, what: "a plan signed by a key outside the site trust")
        case .admins(let admins):
            let firstSent = Date().timeIntervalSince1970
            let output = try rolloutCLIMustSucceed(start + ["--json"], at: spec.at, signer: admins[0])
            guard let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], let id = object["id"] as? String else {
                throw LabError.state("otamesh rollout start at \(spec.at) printed no rollout id: \(Self.oneLine(output))")
            }
            var lastSent = firstSent
            for admin in admins.dropFirst() {
                lastSent = Date().timeIntervalSince1970
                _ = try rolloutCLIMustSucceed(["approve", id], at: spec.at, signer: admin)
            }
            rollouts[spec.name] = RolloutTrack(name: spec.name, id: id, at: spec.at, target: spec.target, firstSent: firstSent, lastSent: lastSent)
            rollouts[spec.name]?.configuration = spec.configuration
            rolloutOrder.append(spec.name)
            sampleRollouts()
            return "\(id) at \(spec.at)" + (admins.count < LabAdmin.threshold ? " (awaits approval: \(admins.count) of \(LabAdmin.threshold) signatures)" : "")
        }
    }

    /// Sends a command that must be refused to every running gateway at once; passes only when
    /// each gateway's admin API answered with a refusal (HTTP 4xx) and no gateway gained a
    /// rollout or changed a rollout's mode.
    func expectRefusal(_ arguments: [String], signer: LabAdmin?, unsigned: Bool, what: String) throws(LabError) -> String {
        let running = runningGateways
        let before = rolloutModes(running)
        let results = try rolloutCLI(arguments, at: running, signer: signer, unsigned: unsigned)
        var problems: [String] = []
        var reasons: Set<String> = []
        for (gateway, result) in zip(running, results) {
            guard let result else { problems.append("\(gateway): no answer within 30s"); continue }
            let text = result.output + result.errors
            if result.status == 0 {
                problems.append("\(gateway) ACCEPTED \(what)")
            } else if let range = text.range(of: "HTTP 4") {
                reasons.insert(String(text[range.lowerBound...].prefix(60)).split(separator: "\n").first.map(String.init) ?? "")
            } else {
                problems.append("\(gateway): failed without the gateway's refusal: \(Self.oneLine(text))")
            }
        }
        let after = rolloutModes(running)
        for gateway in running where before[gateway] != nil && after[gateway] != before[gateway] {
            problems.append("\(gateway): rollouts changed from \(before[gateway]!) to \(after[gateway]!)")
        }
        guard problems.isEmpty else { throw LabError.state(Self.shorten(problems)) }
        return "refused by \(running.count)/\(running.count) gateways (\(reasons.sorted().joined(separator: "; ")))"
    }

    /// Each gateway's rollouts as `id=mode` text (nil where the API did not answer).
    func rolloutModes(_ gateways: [String]) -> [String: String] {
        var modes: [String: String] = [:]
        for (gateway, body) in zip(gateways, adminGet(gateways, "/api/v1/rollouts")) {
            guard let body, let list = RolloutSnapshot.decodeList(Data(body.utf8)) else { continue }
            modes[gateway] = list.map { "\($0.id)=\($0.mode)" }.sorted().joined(separator: ",")
        }
        return modes
    }

    func waitRollout(_ name: String, mode: String, timeout: Double) throws(LabError) -> String {
        let id = try tracked(name).id
        let start = Date()
        var lastReport = Date()
        var missing: [String] = ["not checked yet"]
        var interrupted: Int32?
        Deadline.poll(timeout: timeout, interval: 0.1) {
            if let signal = stop.requested { interrupted = signal; return true }
            // Only the gateways still short of the mode: rounds get shorter as they arrive, so
            // the last one's time is the sharpest (what a gateway reported before is kept).
            let pending = runningGateways.filter { rollouts[name]?.modes[$0] != mode }
            sampleRollouts(only: pending)
            let running = runningGateways
            let modes = rollouts[name]?.modes ?? [:]
            missing = running.compactMap { gateway in
                modes[gateway] == mode ? nil : "\(gateway) \(modes[gateway] ?? "does not know \(id)")"
            }
            if !missing.isEmpty, !narrate, Date().timeIntervalSince(lastReport) >= 5 {
                lastReport = Date()
                print(String(format: "           … %.0fs: ", Date().timeIntervalSince(start)) + Self.shorten(missing))
            }
            return missing.isEmpty
        }
        if let interrupted { throw LabError.interrupted(signal: interrupted) }
        guard missing.isEmpty else {
            throw LabError.state("\(name) not \(mode) everywhere within \(LabDuration.text(timeout)): " + Self.shorten(missing))
        }
        writeRollouts()
        let track = try tracked(name)
        let running = runningGateways
        var parts: [String] = ["\(mode) on \(running.count)/\(running.count) gateways"]
        if let spread = track.planSpread(running) {
            parts.append("plan approved everywhere \(Self.bounds(track.planSpreadLowerBound(running), spread)) after the last signature")
        }
        if mode == "completed", let view = track.latest[track.at] {
            let succeeded = view.stages.last?.succeeded ?? 0
            parts.append(
                "\(succeeded)/\(view.stages.last?.targeted ?? 0) devices updated\(track.configuration ? " and configured" : ""), \(view.failed) failed")
        }
        if mode == "halted", let halt = track.halt {
            parts.append("halt set by \(halt.gateway) (\(halt.reason))")
            if let spread = track.haltSpread(running) {
                parts.append("known everywhere \(Self.bounds(track.haltSpreadLowerBound(running) ?? 0, spread.last)) after it was set")
            }
            let late = track.startsAfterHalt
            parts.append("\(late.count) device updates started after their gateway knew the halt (\(track.updatesStarted) started in all)")
            if !late.isEmpty {
                throw LabError.state(parts.joined(separator: "; ") + ": " + late.map { "\($0.device) at \($0.gateway)" }.joined(separator: ", "))
            }
        }
        return parts.joined(separator: "; ")
    }

    func haltRollout(_ name: String, at gateway: String, reason: String) throws(LabError) -> String {
        let id = try tracked(name).id
        try requireRunning(gateway)
        _ = try rolloutCLIMustSucceed(["halt", id, "--reason", reason], at: gateway, signer: nil)
        sampleRollouts()
        return "\(id) halted at \(gateway)"
    }

    func resumeRollout(_ name: String, at gateway: String, signers: Signers) throws(LabError) -> String {
        let id = try tracked(name).id
        switch signers {
        case .nobody:
            return try expectRefusal(["resume", id], signer: nil, unsigned: true, what: "an unsigned resume")
        case .admins(let admins) where admins.contains(.rogue):
            return try expectRefusal(["resume", id], signer: .rogue, unsigned: false, what: "a resume signed by a key outside the site trust")
        case .admins(let admins):
            try requireRunning(gateway)
            rollouts[name]?.resumedAt = Date().timeIntervalSince1970
            _ = try rolloutCLIMustSucceed(["resume", id], at: gateway, signer: admins[0])
            for admin in admins.dropFirst() { _ = try rolloutCLIMustSucceed(["approve", id], at: gateway, signer: admin) }
            sampleRollouts()
            return "\(id) resume sent at \(gateway) signed by \(signers.text)"
        }
    }

    /// Restarts a device group's otamesh-devicesim with other faults (and version).
    func restartDevices(_ name: String, faults: [DeviceFault], version: String?) throws(LabError) -> String {
        guard var group = deviceGroups[name] else { throw LabError.state("unknown device group \(name)") }
        group.faults = faults
        if let version { group.version = version }
        guard let launch = launches.devices(group) else { throw LabError.state("cannot place device group \(name)") }
        supervisor.stop(launch.label, grace: 10)
        try supervisor.start(launch)
        deviceGroups[name] = group
        return "\(group.count) devices restarted" + (group.version.map { " on \($0)" } ?? "")
    }

    // MARK: Watching

    /// One poll round over every running gateway (while rollouts exist): records what is new,
    /// timed per gateway by its own curl's start and end, narrates it when asked, and prints
    /// progress at most once a second.
    func sampleRollouts(only subset: [String]? = nil) {
        guard !rollouts.isEmpty else { return }
        let running = subset ?? runningGateways
        let began = Date()
        let answers = adminGetTimed(running, "/api/v1/rollouts?outcomes=1")
        let seen = Date()
        pollRounds.count += 1
        pollRounds.seconds += seen.timeIntervalSince(began)
        for (gateway, answer) in zip(running, answers) {
            // This gateway's answer holds for a moment between its curl's start and end.
            let time = answer.ended.timeIntervalSince1970
            let roundBegan = answer.began.timeIntervalSince1970
            guard let body = answer.body, let list = RolloutSnapshot.decodeList(Data(body.utf8)) else { continue }
            for name in rolloutOrder {
                guard let id = rollouts[name]?.id else { continue }
                guard let snapshot = list.first(where: { $0.id == id }) else {
                    rollouts[name]!.observeMissing(gateway, roundBegan: roundBegan)
                    continue
                }
                let events = rollouts[name]!.observe(gateway, snapshot, at: time, roundBegan: roundBegan)
                if narrate { for event in events { narrateEvent(event, rollout: name, running: runningGateways) } }
            }
        }
        if narrate, seen.timeIntervalSince(lastProgress) >= 1 {
            let running = runningGateways
            lastProgress = seen
            for name in rolloutOrder {
                guard let track = rollouts[name], let line = progressLine(track, running: running), progressPrinted[name] != line else { continue }
                progressPrinted[name] = line
                print(line)
            }
        }
    }

    func narrateEvent(_ event: RolloutTrack.Event, rollout name: String, running: [String]) {
        guard let track = rollouts[name] else { return }
        switch event {
        case .planKnown:
            if let spread = track.planSpread(running) {
                print(
                    "  ✓ \(name): every gateway (\(running.count)) has the approved plan, "
                        + "\(Self.bounds(track.planSpreadLowerBound(running), spread)) after the last signature")
            }
        case .stage(let stage, let gateway):
            let percent = track.latest[gateway]?.stages.count ?? 0 > stage ? track.latest[gateway]!.stages[stage].percent : 0
            let count = track.latest[gateway]?.stages.count ?? 0
            print("  → \(name): stage \(stage + 1)/\(count) (\(percent) % of the selected devices) begins (first seen at \(gateway))")
        case .halt(let mark):
            print("  ✋ \(name): HALT set by \(mark.gateway): \(mark.reason)")
        case .haltKnown(let gateway):
            let after = track.haltKnownTime(gateway).map { $0 - Double(track.halt?.at ?? 0) / 1000 } ?? 0
            print("     \(gateway) knows the halt (by +\(Self.seconds(after)))")
            if let spread = track.haltSpread(running) {
                print(
                    "  ✓ \(name): the halt reached all \(running.count) gateways "
                        + "\(Self.bounds(track.haltSpreadLowerBound(running) ?? 0, spread.last)) after it was set; "
                        + "no gateway starts a new device update now")
            }
        }
    }

    /// `r1 stage 2/2 running  gw1 ███░ 3/4 ✓ 0 ✗ 1 …` (per gateway up to eight, else totals).
    func progressLine(_ track: RolloutTrack, running: [String]) -> String? {
        guard let view = track.latest[track.at] ?? track.latest.values.first, !view.stages.isEmpty else { return nil }
        let stage = min(view.stage, view.stages.count - 1)
        var line = "    \(track.name) \(view.mode), stage \(stage + 1)/\(view.stages.count) (\(view.stages[stage].percent) %): "
        if running.count <= 8 {
            line += running.map { gateway in
                let progress = view.gateways[gateway] ?? RolloutSnapshot.Progress(targeted: 0, succeeded: 0, failed: 0, inFlight: 0)
                return "\(gateway) \(Self.bar(progress)) \(progress.succeeded)/\(progress.targeted) ok"
                    + (progress.failed > 0 ? " \(progress.failed) failed" : "") + (progress.inFlight > 0 ? " \(progress.inFlight) updating" : "")
            }.joined(separator: "  ")
        } else {
            let known = running.filter { track.modes[$0] != nil && track.modes[$0] != "awaiting approval" }.count
            line += "plan on \(known)/\(running.count) gateways, \(view.finished - view.failed) ok, \(view.failed) failed"
            if track.halt != nil { line += ", halt known on \(running.filter { track.haltKnownTime($0) != nil }.count)/\(running.count)" }
        }
        return line
    }

    static func bar(_ progress: RolloutSnapshot.Progress, width: Int = 6) -> String {
        guard progress.targeted > 0 else { return "[" + String(repeating: "·", count: width) + "]" }
        let done = min(width, (progress.succeeded + progress.failed) * width / progress.targeted)
        let failed = min(done, (progress.failed * width + progress.targeted - 1) / progress.targeted)
        return "[" + String(repeating: "#", count: done - failed) + String(repeating: "x", count: failed) + String(repeating: "·", count: width - done) + "]"
    }

    static func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }

    /// `0.41–0.73 s`: between the last round that did not see it and the first that did.
    static func bounds(_ lower: Double, _ upper: Double) -> String {
        upper - lower < 0.005 ? seconds(upper) : String(format: "%.2f–%.2f s", min(lower, upper), upper)
    }

    // MARK: Record

    /// STATE/rollouts.json: every tracked rollout, per gateway.
    func writeRollouts() {
        guard !rollouts.isEmpty else { return }
        let running = runningGateways
        let object: [String: Any] = [
            "pollRounds": pollRounds.count,
            "meanPollRoundSeconds": pollRounds.count > 0 ? (pollRounds.seconds / Double(pollRounds.count)).rounded3 : 0,
            "rollouts": rolloutOrder.compactMap { rollouts[$0]?.record(gateways: running) },
        ]
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) {
            FileManager.default.createFile(atPath: paths.rollouts, contents: data)
        }
    }

    /// At the end of the scenario: one last look, the record, one summary line per rollout, and
    /// the problems (updates started after a known halt).
    func finishRollouts() -> [String] {
        guard !rollouts.isEmpty else { return [] }
        sampleRollouts()
        writeRollouts()
        let running = runningGateways
        var problems: [String] = []
        let round = pollRounds.count > 0 ? pollRounds.seconds / Double(pollRounds.count) : 0
        print(
            "rollouts (a time a–b: the last query that had not seen it began at a, the first that had ended at b; "
                + "a round of every gateway took \(Self.seconds(round)) on average; \(paths.rollouts)):")
        for name in rolloutOrder {
            guard let track = rollouts[name] else { continue }
            var parts = ["  \(name) \(track.id): \(track.modes[track.at] ?? "?")"]
            if let spread = track.planSpread(running) {
                parts.append("plan on all \(running.count) gateways \(Self.bounds(track.planSpreadLowerBound(running), spread)) after the last signature")
            }
            if let halt = track.halt {
                parts.append("halt by \(halt.gateway)")
                if let spread = track.haltSpread(running) {
                    parts.append("known on all \(running.count) \(Self.bounds(track.haltSpreadLowerBound(running) ?? 0, spread.last)) after it was set")
                }
                let late = track.startsAfterHalt
                parts.append("\(late.count) updates started after the halt was known")
                problems += late.map { "\(name): \($0.device) started at \($0.gateway) after it knew the halt" }
            }
            print(parts.joined(separator: ", "))
        }
        return problems
    }
}
