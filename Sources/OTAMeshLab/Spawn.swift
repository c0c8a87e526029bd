import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawnp: default signal dispositions and an empty signal
/// mask (the runner's own signal handling must not leak into it), its own process group (a
/// Ctrl-C at the terminal reaches the runner, which then stops children in order), and
/// standard streams from files. Reaped by ``poll()`` / ``wait(timeout:)`` only, for its pid.
final class SpawnedProcess {
    let pid: pid_t
    private(set) var exitStatus: Int32?

    /// Starts `argv` (looked up on PATH) with `environment` added to the runner's.
    /// Standard input comes from `stdin` (or /dev/null); stdout and stderr append to `output`
    /// and `errors` (the same file if equal).
    init(_ argv: [String], environment: [String] = [], stdin: String? = nil, output: String, errors: String) throws(LabError) {
        guard let program = argv.first else { throw LabError.spawn(command: "", reason: "empty command") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if errors == output {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var environmentPairs = ProcessInfo.processInfo.environment
        for entry in environment {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { environmentPairs[parts[0]] = parts[1] }
        }
        let envStrings = environmentPairs.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let result = Self.withCStrings(argv) { argvPointers in
            Self.withCStrings(envStrings) { envPointers in
                posix_spawnp(&pid, program, &actions, &attributes, argvPointers, envPointers)
            }
        }
        guard result == 0 else {
            throw LabError.spawn(command: argv.joined(separator: " "), reason: String(cString: strerror(result)))
        }
        self.pid = pid
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// The exit status once the process ended (128 + N after signal N), nil while it runs.
    @discardableResult
    func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid {
            exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        } else if reaped < 0 && errno == ECHILD {
            exitStatus = -1
        }
        return exitStatus
    }

    var isRunning: Bool { poll() == nil }

    func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// Waits up to `timeout` seconds for the exit; nil if it is still running.
    @discardableResult
    func wait(timeout: Double) -> Int32? {
        Deadline.poll(timeout: timeout) { self.poll() != nil }
        return poll()
    }
}

/// Bounded polling: the only way the lab waits for anything.
enum Deadline {
    /// Checks `condition` every `interval` seconds until it holds or `timeout` passes.
    @discardableResult
    static func poll(timeout: Double, interval: Double = 0.01, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if condition() { return true }
            if Date() >= deadline { return false }
            usleep(useconds_t(max(1_000, min(interval, 1) * 1_000_000)))
        }
    }
}
