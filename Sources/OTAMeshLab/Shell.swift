import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a finished command printed.
public struct CommandResult: Sendable {
    public var status: Int32
    public var output: String
    public var errors: String
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
        if verbose { FileHandle.standardError.write(Data("+ \(invocation)\n".utf8)) }
        let base = "\(scratch)/.otl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let input = invocation.stdin.map { _ in base + ".in" }
        defer { for file in [base + ".out", base + ".err"] + (input.map { [$0] } ?? []) { unlink(file) } }
        if let input, let text = invocation.stdin {
            guard FileManager.default.createFile(atPath: input, contents: Data(text.utf8)) else {
                throw LabError.state("cannot write \(input)")
            }
        }
        let process = try SpawnedProcess(invocation.argv, stdin: input, output: base + ".out", errors: base + ".err")
        guard let status = process.wait(timeout: timeout) else {
            kill(process.pid, SIGKILL)
            process.wait(timeout: 5)
            throw LabError.commandTimedOut(command: invocation.description, seconds: timeout)
        }
        let result = CommandResult(status: status, output: Self.read(base + ".out"), errors: Self.read(base + ".err"))
        if status != 0 && !invocation.mayFail {
            let detail = (result.errors.isEmpty ? result.output : result.errors).trimmingCharacters(in: .whitespacesAndNewlines)
            throw LabError.commandFailed(command: invocation.description, status: status, output: String(detail.suffix(2000)))
        }
        return result
    }

    /// Runs commands in order, stopping at the first failure.
    public func run(_ invocations: [Invocation], timeout: Double = 30) throws(LabError) {
        for invocation in invocations { try run(invocation, timeout: timeout) }
    }

    static func read(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}
