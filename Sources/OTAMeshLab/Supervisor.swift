import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The lab's long-running children (daemons, gateways, origin, devices): starts them inside
/// their namespaces, waits until each is ready, notices unexpected exits, and stops them in
/// reverse order of start. Used from the runner's thread only.
final class Supervisor {
    struct Child {
        let launch: Launch
        let process: SpawnedProcess
        /// Where this start's output begins in the (appended) log.
        let logOffset: UInt64
        /// Stopped on purpose (scenario step or teardown): its exit is not a failure.
        var expected: Bool
        var reported: Bool
    }

    private(set) var children: [Child] = []
    let stop: StopSignal

    init(stop: StopSignal) { self.stop = stop }

    /// Starts a launch; a label already running is an error.
    func start(_ launch: Launch) throws(LabError) {
        if let current = child(launch.label), current.process.isRunning {
            throw LabError.state("\(launch.label) is already running (pid \(current.process.pid))")
        }
        let offset = (try? FileManager.default.attributesOfItem(atPath: launch.log)[.size] as? UInt64) ?? 0
        let process = try SpawnedProcess(launch.commandLine, output: launch.log, errors: launch.log)
        children.removeAll { $0.launch.label == launch.label }
        children.append(Child(launch: launch, process: process, logOffset: offset, expected: false, reported: false))
    }

    func child(_ label: String) -> Child? { children.first { $0.launch.label == label } }

    func isRunning(_ label: String) -> Bool { child(label)?.process.isRunning ?? false }

    /// Waits until every launch is ready (all share one deadline); the first that exits or
    /// misses the deadline fails the wait with its log's tail.
    func waitReady(_ launches: [Launch], timeout: Double) throws(LabError) {
        var pending = launches
        var failure: LabError?
        Deadline.poll(timeout: timeout, interval: 0.05) {
            if let signal = stop.requested { failure = .interrupted(signal: signal); return true }
            pending.removeAll { isReady($0) }
            if let dead = pending.first(where: { !isRunning($0.label) }) {
                let status = child(dead.label)?.process.poll() ?? -1
                failure = .notReady(label: dead.label, reason: "exited with status \(status): \(logTail(dead.label))", log: dead.log)
                return true
            }
            return pending.isEmpty
        }
        if let failure { throw failure }
        if let late = pending.first {
            throw LabError.notReady(
                label: late.label, reason: "not ready within \(LabDuration.text(timeout)): \(logTail(late.label))",
                log: late.log)
        }
    }

    func isReady(_ launch: Launch) -> Bool {
        switch launch.ready {
        case .immediately: return true
        case .fileExists(let path): return FileManager.default.fileExists(atPath: path)
        case .logContains(let marker): return logSinceStart(launch.label).contains(marker)
        }
    }

    /// The log text written since the child's latest start.
    func logSinceStart(_ label: String) -> String {
        guard let child = child(label), let handle = FileHandle(forReadingAtPath: child.launch.log) else { return "" }
        defer { try? handle.close() }
        try? handle.seek(toOffset: child.logOffset)
        let data = (try? handle.read(upToCount: 4 << 20)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func logTail(_ label: String, lines: Int = 5) -> String {
        logSinceStart(label).split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// Sends a signal to one child, marking its exit as intended.
    func signal(_ label: String, _ number: Int32) {
        guard let index = children.firstIndex(where: { $0.launch.label == label }) else { return }
        children[index].expected = true
        children[index].process.signal(number)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds.
    func stop(_ label: String, grace: Double) {
        guard let index = children.firstIndex(where: { $0.launch.label == label }) else { return }
        children[index].expected = true
        let process = children[index].process
        process.signal(SIGTERM)
        if process.wait(timeout: grace) == nil {
            process.signal(SIGKILL)
            process.wait(timeout: 5)
        }
    }

    /// Stops every child: SIGTERM to each, last started first, then one shared `grace` deadline
    /// for all to exit, and SIGKILL for whoever is left.
    func stopAll(grace: Double) {
        for index in children.indices { children[index].expected = true }
        for child in children.reversed() where child.process.isRunning {
            child.process.signal(SIGTERM)
        }
        let deadline = Date().addingTimeInterval(grace)
        for child in children.reversed() {
            let remaining = max(0.1, deadline.timeIntervalSinceNow)
            if child.process.wait(timeout: remaining) == nil {
                child.process.signal(SIGKILL)
                child.process.wait(timeout: 5)
            }
        }
    }

    /// Children that exited without being asked to, each reported once.
    func unexpectedExits() -> [(label: String, status: Int32)] {
        var exits: [(String, Int32)] = []
        for index in children.indices where !children[index].expected && !children[index].reported {
            if let status = children[index].process.poll() {
                children[index].reported = true
                exits.append((children[index].launch.label, status))
            }
        }
        return exits
    }
}
