import ArgumentParser
import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshGateway
import OTAMeshStore

/// `otamesh device config …`: a device's app settings (apps.md, "Settings").
extension DeviceCommand {
    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A device's app settings: set them, import them for many devices from CSV, show them (passwords never shown).",
            subcommands: [Set.self, Show.self, Import.self, Push.self])

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
                    let data = try GatewayAppData(directory: directory)
                    return (data.registry.device(id), data.catalog)
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
                let shown: (SettingValue) -> String = { [json] in json ? $0.plain : $0.shown }
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

        struct Push: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Push DEVICE's configuration image now: an arduino-ota push device takes it with ArduinoOTA's filesystem command (100).",
                discussion: """
                    The image is built from the device's settings here (as the gateway serves it to httpUpdate devices) and uploaded as \
                    espota.py -s does; the device restarts, and the push succeeds once its version endpoint reports the image's config-id \
                    as config ({"version": …, "config": "cfg-…"}).
                    """)
            @OptionGroup var options: ConfigOptions
            @Option(help: "Seconds until the push fails as timeout.") var deadline = 120.0
            @Argument(help: "Device id (a push device of family arduino-ota).") var device: String

            func run() async throws {
                let configuration = try options.load(command: "otamesh device config push")
                let directory = configuration.dataDirectory
                let id = DeviceRegistry.normalizedID(device)
                let work = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-config-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: work) }
                let (image, target, configID) = try reporting("otamesh device config push") { () throws -> (PushImage, PushTarget, String) in
                    let data = try GatewayAppData(directory: directory)
                    guard let record = data.registry.device(id) else { throw CommandFailure("no device \(id) (otamesh device add --family arduino-ota …)") }
                    guard record.family == .arduinoOTA else {
                        throw CommandFailure(
                            "\(id) is a \(record.family.rawValue) device: only arduino-ota devices take a pushed filesystem (httpUpdate devices fetch theirs)")
                    }
                    guard let settings = DeviceSettings(stored: record.settings) else {
                        throw CommandFailure("\(id) has no app settings (otamesh device config set \(id) --app NAME@VERSION …)")
                    }
                    guard let release = data.catalog.release(settings.app, preferring: record.hardware) else {
                        throw CommandFailure("its settings are for \(settings.app), which the trusted release does not have (otamesh apps)")
                    }
                    let secrets = DeviceSecretStore(
                        path: DeviceSecretStore.path(dataDirectory: directory), allowOpenPermissions: configuration.insecurePermissions)
                    let built = try ConfigurationImage.build(release, settings: settings, secrets: try secrets.settingSecrets(for: id))
                    // The image may hold a password: a private file, removed when the push ends.
                    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                    let file = "\(work)/config.img"
                    guard FileManager.default.createFile(atPath: file, contents: Data(built.bytes), attributes: [.posixPermissions: 0o600]) else {
                        throw CommandFailure("cannot write \(file)")
                    }
                    let image = PushImage(
                        path: "configuration \(built.configID)", sha256: "", length: Int64(built.bytes.count), version: nil, file: file, url: nil,
                        configID: built.configID)
                    return (image, try PushTarget(record, secrets: secrets), built.configID)
                }
                var timing = PushTiming()
                timing.deadline = Int64(deadline * 1000)
                let adapter = ArduinoOTAAdapter(timing: timing)
                do throws(PushFailure) {
                    _ = try await adapter.push(image, to: target) { phase in Output.out("\(id): \(phase)") }
                    Output.out("\(id): configured \(configID) (pushed with ArduinoOTA's filesystem command)")
                } catch {
                    Output.err("otamesh device config push: \(id): \(error.reason)")
                    throw ExitCode(1)
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
