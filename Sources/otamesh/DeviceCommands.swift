import ArgumentParser
import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTrust

/// `otamesh device …`: the registry changes an admin makes. While an agent runs on the data
/// directory they go through its admin API (it applies them to the registry it serves from);
/// otherwise they are written here, holding the data directory's lock.
struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Add or remove push devices, tag devices for rollout selectors, or assign firmware to one device by hand.",
        subcommands: [Assign.self, Unassign.self, Tag.self, Config.self, DevicePush.self, Add.self, Remove.self, Accept.self])

    /// Applies `change` — through the running agent when one holds the data directory (or
    /// `--admin URL` names a gateway), else directly — and prints what was done. A refused
    /// change prints what was done before it, then why, and exits 1.
    static func apply(_ change: DeviceChange, api: AdminOptions, command: String) async throws {
        let configuration = try api.config.load()
        var lock: DataDirectoryLock?
        if api.admin == nil {
            lock = try reporting(command) {
                try FileSystem.makeDirectory(configuration.dataDirectory)
                do { return try DataDirectoryLock(directory: configuration.dataDirectory) } catch StoreError.locked { return nil }
            }
        }
        let outcome: Result<[String], DeviceChangeError>
        var via: String?
        if let lock {
            let changes = try reporting(command) {
                DeviceChanges(
                    registry: try DeviceRegistry(path: "\(configuration.dataDirectory)/devices.sqlite"),
                    secrets: DeviceSecretStore(
                        path: DeviceSecretStore.path(dataDirectory: configuration.dataDirectory), allowOpenPermissions: configuration.insecurePermissions),
                    targets: {
                        // No store yet: no verified target either.
                        guard let store = try? BlobStore(configuration: StoreConfiguration(directory: configuration.dataDirectory), mode: .readOnly) else {
                            return [:]
                        }
                        return try DeviceChanges.targets(tufDirectory: "\(configuration.dataDirectory)/tuf", store: store)
                    }, admission: configuration.deviceAdmission, dataDirectory: configuration.dataDirectory,
                    clock: .system,
                    apps: {
                        guard let store = try? BlobStore(configuration: StoreConfiguration(directory: configuration.dataDirectory), mode: .readOnly) else {
                            return AppCatalog(targets: [])
                        }
                        return try DeviceChanges.apps(tufDirectory: "\(configuration.dataDirectory)/tuf", store: store)
                    })
            }
            outcome = withExtendedLifetime(lock) { Result { () throws(DeviceChangeError) in try changes.apply(change) } }
        } else {
            let client = try reporting(command) { try api.client() }
            via = client.base
            outcome = try await reporting(command) {
                do {
                    let answer = try await client.post("devices/changes", body: Array(try JSONEncoder().encode(change)), contentType: "application/json")
                    return .success(try client.decode([String: [String]].self, answer, what: "POST /api/v1/devices/changes")["lines"] ?? [])
                } catch let error as AdminAPIError {
                    guard let refusal = try? JSONDecoder().decode(DeviceChangeError.self, from: Data(error.message.utf8)) else { throw error }
                    return .failure(refusal)
                }
            }
        }
        switch outcome {
        case .success(let lines):
            for line in lines { Output.out(line) }
            if let via { Output.out("(through the running agent at \(via))") }
        case .failure(let refusal):
            for line in refusal.done { Output.out(line) }
            Output.err("\(command): \(refusal.message)")
            throw ExitCode(1)
        }
    }

    /// Device ids from a comma-separated argument.
    static func ids(_ text: String) throws -> [String] {
        let ids = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !ids.isEmpty else { throw ValidationError("no device id given") }
        return ids
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Offer TARGET (a verified target path, see `otamesh images`) to DEVICE (MAC, id, or ip:ADDRESS).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Device id: a MAC (any spelling), a path id, or ip:ADDRESS; several separated by commas.") var device: String
        @Argument(help: "Target path from the trusted metadata.") var target: String

        func run() async throws {
            try await DeviceCommand.apply(.assign(ids: try DeviceCommand.ids(device), target: target), api: api, command: "otamesh device assign")
        }
    }

    struct Unassign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear a device's assignment (it is told: no update).")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Device id.") var device: String

        func run() async throws {
            try await DeviceCommand.apply(.unassign(id: device), api: api, command: "otamesh device unassign")
        }
    }
}

extension DeviceCommand {
    struct Tag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the tags of DEVICE (rollout selectors match them: --select tag=floor2); no tags clears them.")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Device id: a MAC (any spelling), a path id, or ip:ADDRESS; several separated by commas.") var device: String
        @Argument(help: "Tags (letters, digits, - and _).") var tags: [String] = []

        func run() async throws {
            for tag in tags where !DeviceChanges.validTag(tag) {
                throw ValidationError("tag '\(tag)': use letters, digits, - and _")
            }
            try await DeviceCommand.apply(.tag(ids: try DeviceCommand.ids(device), tags: tags), api: api, command: "otamesh device tag")
        }
    }
}

/// `otamesh devices`: every device the gateway has seen or been told about; `--site`: every
/// device of the site, through any gateway's admin API. Reads only: never creates a data directory.
struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List devices: family, hardware, version, address, last seen, assignment, tags, segment, source, proxy, last answer (never passwords).",
        discussion: """
            Without --site, the devices of the gateway whose data directory is --data-dir (./otamesh-data by default). With --site, or \
            when there is no data directory here, every device of the site with the gateway that last saw it, asked of a running gateway \
            (--admin URL; a token, or a site admin key: --key FILE).
            """)
    @OptionGroup var api: AdminOptions
    @OptionGroup var adminKey: AdminKeyOption
    @Flag(help: "Every device of the site (from any gateway, through its admin API), with the gateway that last saw it.") var site = false
    @Flag(help: "One JSON object per device, one per line.") var json = false

    func run() async throws {
        let configuration = try api.config.load()
        let path = "\(configuration.dataDirectory)/devices.sqlite"
        if !site, FileManager.default.fileExists(atPath: path) {
            let registry = try reporting("otamesh devices") { try DeviceRegistry(path: path) }
            try listLocal(try reporting("otamesh devices") { try registry.list() })
            return
        }
        try await reporting("otamesh devices") {
            let view: SiteDevices
            do {
                let client = try api.client(key: adminKey.key)
                view = try client.decode(SiteDevices.self, try await client.get("devices"), what: "GET /api/v1/devices")
            } catch let unreachable as AdminUnreachable where !site {
                throw NoGatewayData(dataDirectory: configuration.dataDirectory, reason: "no gateway answers at \(unreachable.url)")
            } catch is AdminCredentialLookup.Missing where !site {
                let url = try api.address()
                let reason =
                    await AdminClient.answers(url, transport: (try? api.transport(for: url)) ?? .plain)
                    ? "no token or site admin key for the gateway at \(url): --token-file FILE or --key FILE"
                    : "no gateway answers at \(url)"
                throw NoGatewayData(dataDirectory: configuration.dataDirectory, reason: reason)
            }
            listSite(view)
        }
    }

    func listLocal(_ devices: [DeviceRecord]) throws {
        for device in devices {
            if json {
                Output.out(Output.jsonLine(device))
            } else {
                let seen = device.lastSeen > 0 ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: device.lastSeen)) : "never"
                Output.out(
                    Output.printable(
                        [
                            device.id, device.family.rawValue, device.hardware ?? "-", device.version ?? "-", device.address.isEmpty ? "-" : device.address,
                            seen, device.assignedTarget.map { "assigned \($0)" } ?? "unassigned", device.tags.map { "tags \($0)" } ?? "-",
                            "segment \(device.effectiveSegment)", "source \(device.source ?? "-")", device.proxy.map { "proxy \($0)" } ?? "-",
                            device.unconfirmable ? "not pushed (confirm=none: no version endpoint)" : nil,
                            device.lastAnswer ?? "-",
                        ].compactMap { $0 }.joined(separator: "  ")))
            }
        }
        if !json { Output.out("\(devices.count) devices") }
    }

    func listSite(_ view: SiteDevices) {
        if json {
            for device in view.devices { Output.out(Output.jsonLine(device)) }
            return
        }
        let rows =
            [["DEVICE", "GATEWAY", "FAMILY", "HARDWARE", "VERSION", "LAST SEEN", "LAST ANSWER"]]
            + view.devices.map { device in
                let seen = device.lastSeen > 0 ? ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: device.lastSeen)) : "never"
                let gateways = device.gateways.count > 1 ? "\(device.gateway) (+\(device.gateways.dropFirst().joined(separator: ",")))" : device.gateway
                return [device.id, gateways, device.family.rawValue, device.hardware ?? "-", device.version ?? "-", seen, device.lastAnswer ?? "-"].map(
                    Output.printable)
            }
        let widths = (0..<7).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            Output.out(
                row.enumerated().map { $0.offset == 6 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
        }
        let gateways = Set(view.devices.flatMap(\.gateways)).count
        Output.out(
            "\(view.devices.count) devices of the site, on \(gateways) gateways (as gateway \(Output.printable(view.gateway)) sees them\(view.site ? "" : "; its gossip is off, so only its own"))"
        )
    }
}

/// A read-only command found nothing to read: no data directory here and no gateway to ask.
struct NoGatewayData: Error, CustomStringConvertible {
    let dataDirectory: String
    let reason: String
    var description: String {
        "no gateway data at \(dataDirectory) (and \(reason)): give --data-dir DIR of a gateway, or --admin URL of a running one"
    }
}
