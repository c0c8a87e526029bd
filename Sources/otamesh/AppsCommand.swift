import ArgumentParser
import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshTrust
import Yams

/// `otamesh apps`: the signed app catalog this gateway trusts (apps.md).
struct AppsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apps", abstract: "List the apps of the trusted release: per device type, their versions, properties and filesystem.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Only apps for this device type (hardware).") var hardware: String?
    @Flag(help: "One JSON object per app version, one per line.") var json = false

    struct Line: Encodable {
        struct Property: Encodable {
            let prop, label, type: String
            let required: Bool
            let `default`: String?
            let min, max: Int64?
            let pattern: String?
            let choices: [String]?
        }
        struct Filesystem: Encodable {
            let type: String
            let offset, size: Int
        }
        let hardware, name, version, description, firmware: String
        let config: String
        let filesystem: Filesystem?
        let properties: [Property]
        let parts: [String]
    }

    func run() throws {
        let store = try CacheCommand.open(options, mode: .readOnly, command: "otamesh apps")
        let catalog = try reporting("otamesh apps") {
            AppCatalog(targets: try ReleaseCatalog.trustedTargets(tufDirectory: "\(store.configuration.directory)/tuf", store: store).map(\.0))
        }
        for problem in catalog.problems { Output.err("warning: \(Output.printable(problem.description)) (this app version is left out)") }
        let apps = catalog.apps.filter { hardware == nil || $0.hardware == hardware }
        if apps.isEmpty, !json {
            Output.out(
                hardware.map { "no apps for \(Output.printable($0)) in the trusted release" }
                    ?? "no apps in the trusted release (otamesh release add-app adds one)")
        }
        for app in apps {
            if !json {
                let about = app.description.isEmpty ? "" : " — \(Output.printable(app.description))"
                Output.out("\(Output.printable(app.name)) (\(Output.printable(app.hardware)))\(about)")
            }
            for release in app.versions {
                if json { Output.out(Output.jsonLine(Self.line(release))) } else { Self.describe(release) }
            }
        }
    }

    static func line(_ release: AppRelease) -> Line {
        Line(
            hardware: release.hardware, name: release.name, version: release.version, description: release.description, firmware: release.firmware,
            config: "\(release.config.path) (\(release.config.format.rawValue))",
            filesystem: release.filesystem.map { Line.Filesystem(type: $0.kind.rawValue, offset: $0.offset, size: $0.size) },
            properties: release.properties.map {
                Line.Property(
                    prop: $0.prop, label: $0.label, type: $0.kind.rawValue, required: $0.required, default: $0.defaultValue?.plain,
                    min: $0.min, max: $0.max, pattern: $0.pattern, choices: $0.choices.isEmpty ? nil : $0.choices)
            },
            parts: release.parts.map { "\($0.name)@0x\(String($0.offset, radix: 16)): \($0.target)" })
    }

    static func describe(_ release: AppRelease) {
        let filesystem = release.filesystem.map { "\($0.kind.rawValue) at 0x\(String($0.offset, radix: 16)), \($0.size) bytes" } ?? "no filesystem"
        Output.out(
            "  \(Output.printable(release.version))  \(Output.printable(release.firmware))  config \(Output.printable(release.config.path)) in \(filesystem)")
        for property in release.properties {
            var facts = [property.kind.rawValue]
            if property.required { facts.append("required") }
            if let value = property.defaultValue { facts.append("default \(value.shown)") }
            if let min = property.min { facts.append("min \(min)") }
            if let max = property.max { facts.append("max \(max)") }
            if let pattern = property.pattern { facts.append("pattern \(pattern)") }
            if !property.choices.isEmpty { facts.append("one of \(property.choices.joined(separator: ", "))") }
            Output.out(Output.printable("    \(property.prop)  \(property.label)  (\(facts.joined(separator: ", ")))"))
        }
        for part in release.parts { Output.out(Output.printable("    part \(part.name) at 0x\(String(part.offset, radix: 16)): \(part.target)")) }
    }
}

extension ReleaseCommand {
    struct AddApp: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-app",
            abstract: "Declare an app version on a firmware target already added: properties, config file, filesystem (a YAML or JSON spec), re-sign.")
        @OptionGroup var options: RepoOption
        @Option(help: "The firmware target this app version installs (default: the spec's firmware field).") var firmware: String?
        @Argument(help: "The app spec (YAML or JSON): name, description, firmware, properties, config, filesystem, parts, app-offset.") var spec: String

        func run() throws {
            let repo = options.repo
            let (file, given) = (spec, firmware)
            try ReleaseCommand.run("add-app") {
                let repository = try Repository(directory: repo)
                let release = try AppSpecFile.read(file, firmware: given, targets: try repository.targets())
                try repository.setCustom(path: release.firmware, key: "app", value: release.json, now: ReleaseCommand.now)
                let filesystem = release.filesystem.map { "\($0.kind.rawValue) at 0x\(String($0.offset, radix: 16)) (\($0.size) bytes)" } ?? "no filesystem"
                Output.out(
                    "app \(Output.printable(release.reference)) for \(Output.printable(release.hardware)): \(Output.printable(release.firmware)), "
                        + "\(release.properties.count) properties, config \(Output.printable(release.config.path)) in \(filesystem)")
                try ReleaseCommand.reportUnsigned(repository)
            }
        }
    }
}

/// Reads an app spec file (YAML or JSON) against a repository's targets.
enum AppSpecFile {
    static func read(_ path: String, firmware given: String?, targets: [String: TargetFile]) throws -> AppRelease {
        guard let data = FileManager.default.contents(atPath: path) else { throw AppSpecError(source: path, field: "", reason: "cannot read the file") }
        guard data.count <= 1 << 20 else { throw AppSpecError(source: path, field: "", reason: "\(data.count) bytes, at most 1 MiB") }
        let text = String(decoding: data, as: UTF8.self)
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch {
            throw AppSpecError(source: path, field: "", reason: "not YAML or JSON: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        let value = try json(loaded, source: path, at: "")
        guard var object = value.objectValue else { throw AppSpecError(source: path, field: "", reason: "not a mapping of fields") }
        let firmware =
            try given ?? object["firmware"]?.stringValue
            ?? {
                throw AppSpecError(source: path, field: "firmware", reason: "missing: the target path of the app's firmware (otamesh release add it first)")
            }()
        object["firmware"] = nil
        guard let target = targets[firmware] else {
            throw AppSpecError(
                source: path, field: "firmware", reason: "\(firmware) is not a target of this repository (otamesh release add --path \(firmware) FILE first)")
        }
        guard let hardware = target.custom?["hardware"]?.stringValue, let version = target.custom?["version"]?.stringValue else {
            throw AppSpecError(
                source: path, field: "firmware", reason: "\(firmware) has no recorded hardware and version (re-add it with --hardware and --version)")
        }
        let release = try AppRelease(app: .object(object), firmware: firmware, hardware: hardware, version: version, source: path)
        for (index, part) in release.parts.enumerated() where targets[part.target] == nil {
            throw AppSpecError(
                source: path, field: "parts[\(index)].target", reason: "\(part.target) is not a target of this repository (otamesh release add it first)")
        }
        return release
    }

    /// YAML as loaded by Yams, as a JSON value: strings, whole numbers, booleans, lists, mappings.
    static func json(_ value: Any?, source: String, at field: String) throws -> JSONValue {
        switch value {
        case nil: return .null
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .integer(Int64(number))
        case let number as Double:
            guard let whole = Int64(exactly: number) else {
                throw AppSpecError(source: source, field: field, reason: "\(number): whole numbers only (write a version or other text in quotes)")
            }
            return .integer(whole)
        case let items as [Any]:
            return .array(try items.enumerated().map { try json($0.element, source: source, at: "\(field)[\($0.offset)]") })
        case let mapping as [String: Any]:
            var object = JSONObject()
            for (key, item) in mapping { object[key] = try json(item, source: source, at: field.isEmpty ? key : "\(field).\(key)") }
            return .object(object)
        default:
            throw AppSpecError(source: source, field: field, reason: "not a string, number, boolean, list or mapping")
        }
    }
}
