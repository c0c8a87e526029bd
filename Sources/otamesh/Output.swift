import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshFirmware

/// Unbuffered writes to stdout/stderr, so a reader on a pipe sees each line at once.
enum Output {
    static func out(_ line: String, terminator: String = "\n") {
        FileHandle.standardOutput.write(Data((line + terminator).utf8))
    }

    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// `text` safe to print (``terminalSafe(_:)``): what a device or a peer sent can neither move
    /// the cursor, recolour the terminal, reorder text nor forge extra lines.
    static func printable(_ text: String) -> String { terminalSafe(text) }

    /// Encodes a value as one line of JSON with sorted keys.
    static func jsonLine(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return terminalSafeJSON(String(decoding: data, as: UTF8.self))
    }
}

/// Runs a command's work; a typed failure (TUF, store, or any other thrown error) becomes one
/// line on stderr, `<command>: <reason>`, and exit 1. Usage errors pass through to ArgumentParser.
func reporting<T>(_ command: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw report(command, error)
    }
}

/// ``reporting(_:_:)`` for async work.
func reporting<T>(_ command: String, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw report(command, error)
    }
}

/// Prints a failure as one line and returns the error to throw (usage errors pass through).
private func report(_ command: String, _ error: any Error) -> any Error {
    switch error {
    case let error as ExitCode:
        return error
    case let error as ValidationError:
        return error
    case let error as any CustomStringConvertible where !(error is NSError):
        Output.err("\(command): \(error.description)")
        return ExitCode(1)
    default:
        Output.err("\(command): \(error.localizedDescription)")
        return ExitCode(1)
    }
}

/// A command's failure that is not a usage error: printed as one line by ``reporting(_:_:)``,
/// exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
