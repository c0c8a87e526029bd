import ArgumentParser
import Foundation

/// `otamesh report`: what an admin of an offline site carries home — the fleet, or one
/// rollout — as JSON or CSV, from any gateway of the site (docs/dashboard.md "Reports").
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Write the site's fleet or one rollout's report as JSON or CSV (to carry home).",
        subcommands: [Fleet.self, Rollout.self])

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, csv
    }

    /// Fetches `path` from the gateway and writes it to `output` (or standard output).
    static func write(_ path: String, format: Format, api: AdminOptions, output: String?, command: String) async throws {
        let client = try reporting(command) { try api.client() }
        let bytes = try await reporting(command) { try await client.get("\(path)?format=\(format.rawValue)") }
        if let output {
            try reporting(command) { try Data(bytes).write(to: URL(fileURLWithPath: output)) }
            Output.err("\(command): wrote \(output) (\(bytes.count) bytes, from \(client.base))")
        } else {
            FileHandle.standardOutput.write(Data(bytes))
        }
    }

    struct Fleet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every device of the site: version, gateway, last seen, last answer (its rollout outcome).")
        @OptionGroup var api: AdminOptions
        @Option(help: "json or csv.") var format: Format = .json
        @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

        func run() async throws {
            try await ReportCommand.write("reports/fleet", format: format, api: api, output: output, command: "otamesh report fleet")
        }
    }

    struct Rollout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One rollout: plan, per stage, per gateway and per device, with times and reasons.")
        @OptionGroup var api: AdminOptions
        @Option(help: "json or csv.") var format: Format = .json
        @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?
        @Argument(help: "The rollout id (r-…).") var id: String

        func run() async throws {
            let id = id.trimmingCharacters(in: .whitespaces)
            guard id.hasPrefix("r-"), id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                throw ValidationError("'\(id)' is not a rollout id (r- and 12 hex digits, as `otamesh rollout status` lists them)")
            }
            try await ReportCommand.write("reports/rollouts/\(id)", format: format, api: api, output: output, command: "otamesh report rollout")
        }
    }
}
