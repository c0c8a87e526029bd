import ArgumentParser
import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshStore

/// `otamesh device config …`: a device's app settings (apps.md, "Settings").
extension DeviceCommand {
    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A device's app settings: set them, import them for many devices from CSV, show them (passwords never shown).",
            subcommands: [Set.self, Show.self, Import.self])

        struct Set: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set app settings of DEVICE: prop=value … (checked against its app version; all or nothing).",
                discussion: """
                    The app version is --app NAME@VERSION, else the one its settings were made for, else the one whose firmware the \
                    device runs. Password properties go to the gateway's secret store (DATA/keys/device-secrets.json), never to the \
                    registry, logs or gossip. To keep a password out of the shell history, give it as prop=@env:NAME or prop=@file:PATH.
                    """)
            @OptionGroup var api: AdminOptions
            @Option(help: "The app version to check against: NAME@VERSION (otamesh apps).") var app: String?
            @Option(help: "Clear a property (its default applies again); repeatable.") var unset: [String] = []
            @Option(help: "The device's IP address: a configuration image holding a password is served only to it (default: where it last asked from).")
            var address: String?
            @Argument(help: "Device id.") var device: String
            @Argument(help: "prop=value settings.") var settings: [String] = []

            func run() async throws {
                guard !settings.isEmpty || !unset.isEmpty else { throw ValidationError("give prop=value settings, or --unset PROP") }
                let resolved = try settings.map(Config.resolve)
                try await DeviceCommand.apply(
                    .configure(rows: [SettingsAssignment(id: device, app: app, set: resolved, unset: unset, address: address)]), api: api,
                    command: "otamesh device config set")
            }
        }

        struct Import: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set app settings of many devices from a CSV file: a device column, an optional app column, one column per property.",
                discussion: "An empty cell leaves that property as it is. Every row is checked first; one bad value changes nothing.")
            @OptionGroup var api: AdminOptions
            @Argument(help: "The CSV file.") var file: String

            func run() async throws {
                let path = file
                let rows = try reporting("otamesh device config import") { () throws -> [SettingsAssignment] in
                    guard let data = FileManager.default.contents(atPath: path) else {
                        throw SettingsChange.Problems(problems: [SettingProblem(prop: path, reason: "cannot read the file")])
                    }
                    return try SettingsCSV.parse([UInt8](data), file: path).get()
                }
                try await DeviceCommand.apply(.configure(rows: rows), api: api, command: "otamesh device config import")
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show DEVICE's app settings: set values, defaults, what is missing; passwords only as set or not.")
            @OptionGroup var api: AdminOptions
            @Flag(help: "One JSON object.") var json = false
            @Argument(help: "Device id.") var device: String

            struct Line: Encodable {
                struct Property: Encodable {
                    let prop, type: String
                    let value: String?
                    let source: String
                }
                let device: String
                let app: String?
                let properties: [Property]
                let missing: [String]
            }

            func run() throws {
                let configuration = try api.config.load()
                let directory = configuration.dataDirectory
                let id = DeviceRegistry.normalizedID(device)
                let (record, catalog) = try reporting("otamesh device config show") { () throws -> (DeviceRecord?, AppCatalog) in
                    guard FileManager.default.fileExists(atPath: "\(directory)/devices.sqlite") else {
                        throw CommandFailure("no gateway data at \(directory): give --data-dir DIR of a gateway")
                    }
                    let registry = try DeviceRegistry(path: "\(directory)/devices.sqlite")
                    let store = try BlobStore(configuration: StoreConfiguration(directory: directory), mode: .readOnly)
                    return (registry.device(id), try DeviceChanges.apps(tufDirectory: "\(directory)/tuf", store: store))
                }
                let settings = DeviceSettings(stored: record?.settings)
                guard let settings, let release = catalog.release(settings.app, hardware: record?.hardware) else {
                    let why = settings.map { "its settings are for \($0.app), which the trusted release no longer has" } ?? "no app settings"
                    if json {
                        Output.out(Output.jsonLine(Line(device: id, app: settings?.app, properties: [], missing: [])))
                    } else {
                        Output.out("\(Output.printable(id)): \(Output.printable(why))")
                    }
                    return
                }
                // JSON carries the value itself; the terminal a quoted, escaped form.
                let shown: (SettingValue) -> String = { [json] in json ? AppsCommand.plain($0) : $0.shown }
                let properties = release.properties.map { property -> Line.Property in
                    if property.isSecret {
                        return Line.Property(
                            prop: property.prop, type: property.kind.rawValue, value: nil, source: settings.secrets.contains(property.prop) ? "set" : "not set")
                    }
                    if let value = settings.values[property.prop] {
                        return Line.Property(prop: property.prop, type: property.kind.rawValue, value: shown(value), source: "set")
                    }
                    if let value = property.defaultValue {
                        return Line.Property(prop: property.prop, type: property.kind.rawValue, value: shown(value), source: "default")
                    }
                    return Line.Property(prop: property.prop, type: property.kind.rawValue, value: nil, source: property.required ? "missing" : "not set")
                }
                let line = Line(device: id, app: release.reference, properties: properties, missing: settings.missing(release))
                if json {
                    Output.out(Output.jsonLine(line))
                    return
                }
                Output.out("\(Output.printable(id)): \(Output.printable(release.reference)) (config \(Output.printable(release.config.path)))")
                for property in properties {
                    let value = property.value.map { "\($0)  " } ?? ""
                    Output.out(Output.printable("  \(property.prop)  \(value)(\(property.source))"))
                }
                if !line.missing.isEmpty {
                    Output.out("missing: \(line.missing.joined(separator: ", ")) — required before its configuration image is built")
                }
            }
        }

        /// `prop=@env:NAME` and `prop=@file:PATH` read the value from the environment or a file
        /// (its last line break dropped), so a password need not appear in the shell history.
        static func resolve(_ word: String) throws -> String {
            guard let equals = word.firstIndex(of: "=") else { return word }
            let prop = word[..<equals]
            let value = word[word.index(after: equals)...]
            if value.hasPrefix("@env:") {
                let name = String(value.dropFirst(5))
                guard let text = ProcessInfo.processInfo.environment[name] else { throw ValidationError("\(prop): environment variable \(name) is not set") }
                return "\(prop)=\(text)"
            }
            if value.hasPrefix("@file:") {
                let path = String(value.dropFirst(6))
                guard let data = FileManager.default.contents(atPath: path), data.count <= 64 << 10 else {
                    throw ValidationError("\(prop): cannot read \(path) (a file of at most 64 KiB)")
                }
                var text = String(decoding: data, as: UTF8.self)
                if text.hasSuffix("\n") { text.removeLast() }
                if text.hasSuffix("\r") { text.removeLast() }
                return "\(prop)=\(text)"
            }
            return word
        }
    }
}
