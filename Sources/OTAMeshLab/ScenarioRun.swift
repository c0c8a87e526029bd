import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one scenario step.
public struct StepResult: Sendable {
    public var index: Int
    public var summary: String
    public var passed: Bool
    public var detail: String
    /// Seconds since the runner started, when the step began, and how long it took.
    public var started: Double
    public var duration: Double
}

public struct ScenarioReport: Sendable {
    public var results: [StepResult]
    public var total: Int
    /// Children that exited without being asked to.
    public var unexpectedExits: Int
    /// What the rollout checks found wrong over the whole run (a device update started after
    /// its gateway knew a halt).
    public var rolloutProblems: [String] = []
    public var passed: Bool { results.count == total && results.allSatisfy(\.passed) && unexpectedExits == 0 && rolloutProblems.isEmpty }
}

extension LabRunner {
    /// Runs the topology's scenario, one line per step; stops at the first failed step or when
    /// `timeout` seconds have passed.
    public func runScenario(timeout: Double) -> ScenarioReport {
        let steps = topology.scenario
        let deadline = Date().addingTimeInterval(timeout)
        var results: [StepResult] = []
        var unexpected = 0
        print("scenario: \(steps.count) steps, timeout \(LabDuration.text(timeout))")
        for (index, step) in steps.enumerated() {
            let started = elapsed
            let remaining = deadline.timeIntervalSinceNow
            var passed = false
            var detail = ""
            if let signal = stop.requested {
                detail = "interrupted by signal \(signal)"
            } else if remaining <= 0 {
                detail = "scenario timeout reached"
            } else {
                do {
                    detail = try perform(step, remaining: remaining)
                    passed = true
                } catch {
                    detail = error.description
                }
            }
            unexpected += reportUnexpectedExits()
            let result = StepResult(
                index: index + 1, summary: step.summary, passed: passed, detail: detail,
                started: started, duration: elapsed - started)
            results.append(result)
            // Narrated, a `say` is its own line already.
            if case .say = step, narrate, passed { continue }
            print(
                "[\(String(format: "%7.1f", result.started))s] \(result.index)/\(steps.count) \(passed ? "ok  " : "FAIL") "
                    + "\(step.summary) (\(String(format: "%.1f", result.duration))s)" + (detail.isEmpty ? "" : ": \(detail)"))
            if !passed { break }
        }
        var report = ScenarioReport(results: results, total: steps.count, unexpectedExits: unexpected)
        report.rolloutProblems = finishRollouts()
        let passedCount = results.filter(\.passed).count
        print(
            "summary: \(passedCount)/\(steps.count) steps passed" + (unexpected > 0 ? ", \(unexpected) unexpected exits" : "")
                + (report.rolloutProblems.isEmpty ? "" : ", \(report.rolloutProblems.count) rollout problems")
                + " in \(String(format: "%.1f", elapsed))s — \(report.passed ? "PASS" : "FAIL")")
        return report
    }

    /// Performs one step; returns a short detail for the step's line.
    func perform(_ step: ScenarioStep, remaining: Double) throws(LabError) -> String {
        switch step {
        case .wait(let condition, let timeout):
            return try wait(for: condition, timeout: min(timeout, remaining))
        case .kill(let name):
            try requireRunning(name)
            supervisor.signal(name, SIGKILL)
            guard Deadline.poll(timeout: 10, interval: 0.02, { !supervisor.isRunning(name) }) else {
                throw LabError.state("\(name) still runs 10s after SIGKILL")
            }
            down.insert(name)
            return ""
        case .stop(let name):
            try requireRunning(name)
            supervisor.stop(name, grace: 30)
            down.insert(name)
            return "exit \(supervisor.child(name)?.process.poll() ?? -1)"
        case .start(let name):
            guard !supervisor.isRunning(name), let launch = launches.gateway(name) else {
                throw LabError.state("\(name) is already running")
            }
            try supervisor.start(launch)
            try supervisor.waitReady([launch], timeout: min(60, remaining))
            down.remove(name)
            return ""
        case .partition(let groups):
            try shell.run(plan.partition(groups))
            return ""
        case .heal:
            try shell.run(plan.heal)
            return ""
        case .link(let network, let change):
            var shape = shapes[network] ?? LinkShape()
            switch change {
            case .loss(let percent): shape.lossPercent = percent
            case .rate(let rate): shape.rate = rate
            case .delay(let delay): shape.delay = delay
            }
            try applyShape(network, shape)
            return shape.summary
        case .sleep(let seconds):
            let soak = min(seconds, remaining)
            Deadline.poll(timeout: soak, interval: 0.2) {
                sampleRollouts()
                return stop.requested != nil
            }
            try checkStop()
            return soak < seconds ? "cut to \(LabDuration.text(soak)) by the scenario timeout" : ""
        case .rollout(let spec):
            return try startRollout(spec)
        case .rolloutMode(let name, let mode, let timeout):
            return try waitRollout(name, mode: mode, timeout: min(timeout, remaining))
        case .halt(let name, let at, let reason):
            return try haltRollout(name, at: at, reason: reason)
        case .resume(let name, let at, let signers):
            return try resumeRollout(name, at: at, signers: signers)
        case .devices(let group, let faults, let version):
            return try restartDevices(group, faults: faults, version: version)
        case .configure(let spec):
            return try configure(spec)
        case .say(let text):
            print(narrate ? "\n▶ \(text)" : "  ▶ \(text)")
            return ""
        }
    }

    func requireRunning(_ name: String) throws(LabError) {
        guard supervisor.isRunning(name) else { throw LabError.state("\(name) is not running") }
    }

    /// Polls every running gateway's members API until the condition holds, printing what is
    /// still missing every 5 s.
    func wait(for condition: ScenarioStep.Condition, timeout: Double) throws(LabError) -> String {
        let start = Date()
        var lastProgress = Date()
        var missing: [String] = ["not checked yet"]
        var interrupted: Int32?
        Deadline.poll(timeout: timeout, interval: 1) {
            if let signal = stop.requested { interrupted = signal; return true }
            sampleRollouts()
            let running = runningGateways
            let reports = members(of: running)
            switch condition {
            case .converged: missing = Convergence.converged(reports: reports, running: running, expectedImages: expectedImages)
            case .failed(let name, let by): missing = Convergence.failed(name, by: by, reports: reports, running: running)
            case .alive(let name, let by): missing = Convergence.alive(name, by: by, reports: reports, running: running)
            case .discovered(let name, let count):
                let found = discoveredDevices(at: name)
                missing = found >= count ? [] : ["\(name) discovered \(found)/\(count) devices"]
            case .configured(let group, let settings):
                missing = notConfigured(group, settings: settings)
            }
            if !missing.isEmpty, Date().timeIntervalSince(lastProgress) >= 5 {
                lastProgress = Date()
                print(String(format: "           … %.0fs: ", Date().timeIntervalSince(start)) + Self.shorten(missing))
            }
            return missing.isEmpty
        }
        if let interrupted { throw LabError.interrupted(signal: interrupted) }
        guard missing.isEmpty else {
            throw LabError.state("not within \(LabDuration.text(timeout)): " + Self.shorten(missing))
        }
        return ""
    }

    /// How many devices a gateway's discovery has recorded (`otamesh devices --json` on its data
    /// directory, in the host namespace: a file read, no traffic).
    func discoveredDevices(at gateway: String) -> Int {
        let invocation = Invocation([launches.binaries.otamesh, "devices", "--data-dir", paths.dataDirectory(gateway), "--json"], mayFail: true)
        guard let result = try? shell.run(invocation, timeout: 10), result.status == 0 else { return 0 }
        return result.output.split(separator: "\n").filter { $0.contains("\"lastAnswer\":\"discovered") }.count
    }

    static func shorten(_ missing: [String]) -> String {
        missing.prefix(4).joined(separator: "; ") + (missing.count > 4 ? "; … \(missing.count - 4) more" : "")
    }

    /// Every listed gateway's members report, fetched at once with curl inside each namespace.
    public func members(of gateways: [String]) -> [String: MembersReport?] {
        let answers = adminGet(gateways, "/api/v1/members")
        var reports: [String: MembersReport?] = [:]
        for (gateway, body) in zip(gateways, answers) { reports[gateway] = body.flatMap { MembersReport.decode(Data($0.utf8)) } }
        return reports
    }

    /// GET on each gateway's admin API from inside its namespace, concurrently (one bounded
    /// round, however many gateways); nil for any failure.
    public func adminGet(_ gateways: [String], _ path: String) -> [String?] {
        adminGetTimed(gateways, path).map(\.body)
    }

    /// ``adminGet(_:_:)`` with, per gateway, when its curl started and when it was seen to
    /// end: the answer describes the gateway at some moment in between.
    public func adminGetTimed(_ gateways: [String], _ path: String) -> [(body: String?, began: Date, ended: Date)] {
        let invocations = gateways.map { gateway in
            Invocation(
                ["ip", "netns", "exec", layout.gateway(gateway)?.namespace ?? "-", "curl", "-sf", "--max-time", "5"]
                    + authorization(gateway) + ["\(GatewayPorts.adminURL)\(path)"], mayFail: true)
        }
        let now = Date()
        guard let results = try? shell.runConcurrently(invocations, timeout: 8) else { return gateways.map { _ in (nil, now, Date()) } }
        return results.map { result in
            (result.flatMap { $0.status == 0 ? $0.output : nil }, result?.began ?? now, result?.ended ?? Date())
        }
    }

    /// `-H @FILE` with the gateway's read-only admin API token (`/api/v1` needs one), from a
    /// header file (0600) written beside its data once the agent created the token: the token
    /// never appears on a command line. Empty until the token exists.
    func authorization(_ gateway: String) -> [String] {
        let header = "\(paths.gateway(gateway))/admin-read.header"
        let files = FileManager.default
        if !files.fileExists(atPath: header) {
            guard let data = files.contents(atPath: "\(paths.dataDirectory(gateway))/keys/read.token") else { return [] }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty,
                files.createFile(atPath: header, contents: Data("Authorization: Bearer \(token)\n".utf8), attributes: [.posixPermissions: 0o600])
            else { return [] }
        }
        return ["-H", "@\(header)"]
    }
}
