import ArgumentParser
import Foundation

/// Unbuffered writes to stdout/stderr, so a reader on a pipe sees each line at once.
enum Output {
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Encodes a value as one line of JSON with sorted keys.
    static func jsonLine(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Runs a command's work; a typed failure (TUF, store, or any other thrown error) becomes one
/// line on stderr, `<command>: <reason>`, and exit 1. Usage errors pass through to ArgumentParser.
func reporting<T>(_ command: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch let error as CustomStringConvertible where !(error is NSError) {
        Output.err("\(command): \(error.description)")
        throw ExitCode(1)
    } catch {
        Output.err("\(command): \(error.localizedDescription)")
        throw ExitCode(1)
    }
}
