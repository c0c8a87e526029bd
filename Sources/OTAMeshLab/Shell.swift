import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a finished command printed.
public struct CommandResult: Sendable {
    public var status: Int32
    public var output: String
    public var errors: String
    /// When the command was started and when its exit was noticed (within 5 ms).
    public var began = Date.distantPast
    public var ended = Date.distantPast
}

/// Runs ``Invocation``s to completion, each with a deadline, capturing output through
/// temporary files (no pipe can fill up and stall a child).
public struct Shell: Sendable {
    /// Directory for the temporary capture files.
    let scratch: String
    /// Print each command before running it.
    let verbose: Bool

    public init(scratch: String = NSTemporaryDirectory(), verbose: Bool = false) {
        self.scratch = scratch
        self.verbose = verbose
    }

    /// Runs one command; a failure throws unless the invocation tolerates it.
    @discardableResult
    public func run(_ invocation: Invocation, timeout: Double = 30) throws(LabError) -> CommandResult {
        let result = try runConcurrently([invocation], timeout: timeout)[0]
        guard let result else { throw LabError.commandTimedOut(command: invocation.description, seconds: timeout) }
        if result.status != 0 && !invocation.mayFail {
            let detail = (result.errors.isEmpty ? result.output : result.errors).trimmingCharacters(in: .whitespacesAndNewlines)
            throw LabError.commandFailed(command: invocation.description, status: result.status, output: String(detail.suffix(2000)))
        }
        return result
    }

    /// Starts every command at once and waits for all under one deadline; a command still
    /// running then is killed and its result is nil. Exit statuses are not judged here.
    public func runConcurrently(_ invocations: [Invocation], timeout: Double) throws(LabError) -> [CommandResult?] {
        struct Started {
            let process: SpawnedProcess
            let base: String
            let input: String?
            let began: Date
        }
        var started: [Started] = []
        defer {
            for item in started {
                if item.process.isRunning {
                    kill(item.process.pid, SIGKILL)
                    item.process.wait(timeout: 5)
                }
                for file in [item.base + ".out", item.base + ".err"] + (item.input.map { [$0] } ?? []) { unlink(file) }
            }
        }
        for invocation in invocations {
            if verbose { FileHandle.standardError.write(Data("+ \(invocation)\n".utf8)) }
            let base = "\(scratch)/.otl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let input = invocation.stdin.map { _ in base + ".in" }
            if let input, let text = invocation.stdin {
                guard FileManager.default.createFile(atPath: input, contents: Data(text.utf8)) else {
                    throw LabError.state("cannot write \(input)")
                }
            }
            let began = Date()
            let process = try SpawnedProcess(invocation.argv, stdin: input, output: base + ".out", errors: base + ".err")
            started.append(Started(process: process, base: base, input: input, began: began))
        }
        var ended = [Date?](repeating: nil, count: started.count)
        Deadline.poll(timeout: timeout, interval: 0.005) {
            for index in started.indices where ended[index] == nil && !started[index].process.isRunning { ended[index] = Date() }
            return ended.allSatisfy { $0 != nil }
        }
        return started.enumerated().map { index, item in
            guard let status = item.process.poll() else { return nil }
            return CommandResult(
                status: status, output: Self.read(item.base + ".out"), errors: Self.read(item.base + ".err"),
                began: item.began, ended: ended[index] ?? Date())
        }
    }

    /// Runs commands in order, stopping at the first failure.
    public func run(_ invocations: [Invocation], timeout: Double = 30) throws(LabError) {
        for invocation in invocations { try run(invocation, timeout: timeout) }
    }

    static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}
