import ArgumentParser
import Foundation
import OTAMeshGateway
import Synchronization

/// The old key spellings already warned about in this process.
private let warnedDeprecations = Mutex<Set<String>>([])

/// Options every command that touches a data directory shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file (default: $OTAMESH_CONFIG, else none).")
    var config: String?

    @Option(name: .long, help: "Data directory (default ./otamesh-data).")
    var dataDir: String?

    /// Defaults < file < environment < these flags. A bad value ends the command with exit 2 and
    /// one line `COMMAND: reason` on stderr.
    /// `extra`: (key, value) from the command's own flags; an error names the flag as typed —
    /// the agent's flag for the key, or the one `flags` gives (`cache gc --quota`).
    func load(command: String = "otamesh", extra: [(String, String?)] = [], flags: [String: String] = [:]) throws -> AgentConfiguration {
        var configuration = AgentConfiguration()
        let environment = ProcessInfo.processInfo.environment
        do {
            if let path = config ?? environment["OTAMESH_CONFIG"] {
                let text: String
                do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                    throw ConfigurationError.unreadable(path: path, reason: (error as NSError).localizedDescription)
                }
                try configuration.apply(yaml: text, source: path)
            }
            try configuration.apply(environment: environment)
            if let dataDir { try configuration.set("dataDir", dataDir, source: "--data-dir") }
            for (key, value) in extra {
                // Named as the user typed it: the flag of the key (`--device-max-connections`).
                let flag = flags[key] ?? AgentConfiguration.keys.first { $0.file == key }?.flag ?? "--\(key)"
                if let value { try configuration.set(key, value, source: flag) }
            }
        } catch let error as ConfigurationError {
            Output.err("\(command): \(error)")
            throw ExitCode(2)
        }
        // Once per process: some commands read the configuration more than once.
        for warning in configuration.deprecations where warnedDeprecations.withLock({ $0.insert(warning).inserted }) {
            Output.err("\(command): warning: \(warning)")
        }
        return configuration
    }
}
