import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `lab.json` in the state directory: written before the first namespace is created and removed
/// after the last one is gone, so a crashed run leaves behind exactly what `lab down` needs.
public struct LabRecord: Codable, Sendable, Equatable {
    public var name: String
    public var prefix: String
    public var namespaces: [String]
    /// The runner's process id.
    public var runner: Int32
    public var started: String

    public init(name: String, prefix: String, namespaces: [String], runner: Int32, started: String) {
        self.name = name
        self.prefix = prefix
        self.namespaces = namespaces
        self.runner = runner
        self.started = started
    }

    public static func read(_ path: String) -> LabRecord? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(LabRecord.self, from: data)
    }

    public func write(_ path: String) throws(LabError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self), FileManager.default.createFile(atPath: path, contents: data) else {
            throw LabError.state("cannot write \(path)")
        }
    }

    /// Whether the recorded runner still runs (an otamesh process, not a recycled pid).
    public var runnerIsAlive: Bool {
        guard runner > 0, runner != getpid(), kill(runner, 0) == 0,
            let cmdline = FileManager.default.contents(atPath: "/proc/\(runner)/cmdline")
        else { return false }
        return String(decoding: cmdline, as: UTF8.self).contains("otamesh")
    }
}

/// Empties and removes network namespaces: every process inside gets SIGTERM, then SIGKILL,
/// then the namespace is deleted (which removes its veths and bridges).
struct NamespaceCleaner {
    let shell: Shell

    /// Every network namespace name that exists now.
    func all() -> [String] {
        let listing = (try? shell.run(Invocation(["ip", "netns", "list"], mayFail: true)).output) ?? ""
        return listing.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Namespaces that exist now and start with `prefix`.
    func existing(prefix: String) -> [String] { all().filter { $0.hasPrefix(prefix) } }

    func pids(in namespace: String) -> [pid_t] {
        let output = (try? shell.run(Invocation(["ip", "netns", "pids", namespace], mayFail: true)).output) ?? ""
        return output.split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }.filter { $0 != getpid() }
    }

    /// Kills what runs in the namespaces (bounded: TERM, up to `grace` s, KILL, up to 5 s more).
    func killProcesses(in namespaces: [String], grace: Double) -> Int {
        let victims = namespaces.flatMap(pids(in:))
        guard !victims.isEmpty else { return 0 }
        for pid in victims { kill(pid, SIGTERM) }
        let gone = Deadline.poll(timeout: grace, interval: 0.05) { victims.allSatisfy { !Self.alive($0) } }
        if !gone {
            for pid in victims where Self.alive(pid) { kill(pid, SIGKILL) }
            Deadline.poll(timeout: 5, interval: 0.05) { victims.allSatisfy { !Self.alive($0) } }
        }
        return victims.count
    }

    /// Alive and not a zombie (a zombie's namespace reference is already dropped).
    static func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    /// Deletes the namespaces, the last first.
    func delete(_ namespaces: [String]) {
        for namespace in namespaces.reversed() {
            _ = try? shell.run(Invocation(["ip", "netns", "del", namespace], mayFail: true))
        }
    }
}

/// `otamesh lab down`: removes what labs left behind, found through their state directories'
/// records and the namespace prefix.
public enum LabCleanup {
    public struct Summary: Sendable {
        public var runnersStopped: Int
        public var processesKilled: Int
        public var namespacesRemoved: [String]
    }

    /// Stops recorded runners that still run (they tear down themselves), then kills whatever
    /// runs in the remaining namespaces starting with `prefix` or listed in a record, deletes
    /// those namespaces and the records.
    public static func down(
        prefix: String, stateRoots: [String], shell: Shell = Shell(),
        output: (String) -> Void
    ) -> Summary {
        let cleaner = NamespaceCleaner(shell: shell)
        var recorded: [String] = []
        var stopped = 0
        for root in stateRoots {
            let paths = LabPaths(root: root)
            guard let record = LabRecord.read(paths.record) else { continue }
            recorded += record.namespaces
            if record.runnerIsAlive {
                output("stopping the runner of lab \(record.name) (pid \(record.runner))")
                kill(record.runner, SIGTERM)
                if !Deadline.poll(timeout: 60, interval: 0.1, { kill(record.runner, 0) != 0 }) {
                    output("runner \(record.runner) did not exit within 60s; cleaning up around it")
                }
                stopped += 1
            }
        }
        let namespaces = cleaner.all().filter { $0.hasPrefix(prefix) || recorded.contains($0) }.sorted()
        let killed = cleaner.killProcesses(in: namespaces, grace: 5)
        cleaner.delete(namespaces)
        // A soak's small disk, left mounted by a runner that died.
        for root in stateRoots {
            for mount in LabRunner.mounts(under: "\(root)/gw/") {
                if (try? shell.run(Invocation(["umount", "-l", mount], mayFail: true)))?.status == 0 { output("unmounted \(mount)") }
            }
        }
        let left = cleaner.all().filter { $0.hasPrefix(prefix) || recorded.contains($0) }
        for root in stateRoots where left.isEmpty { unlink(LabPaths(root: root).record) }
        for namespace in namespaces where !left.contains(namespace) { output("removed namespace \(namespace)") }
        if !left.isEmpty { output("could not remove: \(left.joined(separator: ", "))") }
        return Summary(runnersStopped: stopped, processesKilled: killed, namespacesRemoved: namespaces.filter { !left.contains($0) })
    }
}
