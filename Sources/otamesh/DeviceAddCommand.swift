import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTransfer

/// `otamesh device add|remove`: push devices by hand (they never ask the gateway, so it learns
/// of them here). Like every device change, through the running agent when there is one.
/// Passwords go to the secret store, never onto the command line.
extension DeviceCommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Add (or redefine) a push device: its family, address, proxy, segment and adapter options; its password goes to DATA/keys/device-secrets.json.")
        @OptionGroup var api: AdminOptions
        @Option(help: "Device id (a MAC in any spelling, or a name).") var id: String
        @Option(help: "Push family: \(DeviceFamily.names(DeviceFamily.push)), … (the agent's adapters), or ddi (a hawkBit DDI client: issues its TargetToken).")
        var family: String
        @Option(help: "HOST or HOST:PORT the gateway reaches the device at (port 80 by default; not for ddi).") var address: String?
        @Option(help: "Hardware key rollouts select on (esp32, esp8266, …).") var hardware: String?
        @Option(help: "Firmware variant the device runs (projectMM's esp32-eth, …).") var variant: String?
        @Option(help: "The version the device runs now, if known.") var version: String?
        @Option(help: "Comma-separated tags (letters, digits, - and _).") var tags: String?
        @Option(help: "HTTP proxy the device is reached through: http://HOST:PORT.") var proxy: String?
        @Option(help: "Network segment name for push limits (default: derived from the address, e.g. 10.77.3.0/24).") var segment: String?
        @Option(
            name: .customLong("option"),
            help: "Adapter option key=value (e.g. fetch-url's path=/ota, http-upload's dialect=elegantota3 or upload_path=/update); repeatable.")
        var deviceOptions: [String] = []
        @Option(help: "User for the device's password (default admin).") var user: String?
        @Option(name: .customLong("password-env"), help: "Name of the environment variable holding the device's password.") var passwordEnv: String?
        @Option(name: .customLong("password-file"), help: "File holding the device's password (first line).") var passwordFile: String?

        func validate() throws {
            guard !DeviceRegistry.normalizedID(id).isEmpty, !id.contains(where: \.isWhitespace) else {
                throw ValidationError("--id: a device id without spaces")
            }
            guard !family.isEmpty, family.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ValidationError("--family: letters, digits, - and _")
            }
            if DeviceFamily(rawValue: family) == .ddi {
                guard address == nil, proxy == nil, passwordEnv == nil, passwordFile == nil, deviceOptions.isEmpty else {
                    throw ValidationError("--family ddi: the device asks the gateway, so no --address, --proxy, password or --option")
                }
            } else {
                guard let address else { throw ValidationError("--address: required for push family \(family) (HOST or HOST:PORT)") }
                let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
                guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" }), (1...65535).contains(port) else {
                    throw ValidationError("--address: HOST or HOST:PORT (port 1…65535), got \(address)")
                }
            }
            if let proxy {
                guard proxy.hasPrefix("http://"), ProxySettings.parse(proxy) != nil else {
                    throw ValidationError("--proxy: expected http://HOST:PORT, got \(proxy)")
                }
            }
            if let segment, segment.isEmpty || segment.contains(where: \.isWhitespace) { throw ValidationError("--segment: a name without spaces") }
            for tag in Self.tagList(tags) where !tag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
                throw ValidationError("--tags '\(tag)': use letters, digits, - and _")
            }
            guard passwordEnv == nil || passwordFile == nil else { throw ValidationError("--password-env or --password-file, not both") }
            if user != nil, passwordEnv == nil, passwordFile == nil { throw ValidationError("--user needs --password-env or --password-file") }
            let options = try DevicePush.options(deviceOptions)
            if DeviceFamily(rawValue: family) == .fetchURL {
                do { _ = try FetchURLRequest(options: options) } catch { throw ValidationError("--option: \(error)") }
            }
            if DeviceFamily(rawValue: family) == .httpUpload, let dialect = options["dialect"], HTTPUploadPush.Dialect(rawValue: dialect) == nil {
                throw ValidationError("--option dialect=\(dialect): http-upload knows update-server and elegantota3")
            }
            if DeviceFamily(rawValue: family) == .arduinoOTA, let dialect = options["dialect"], ArduinoOTADialect(rawValue: dialect) == nil {
                throw ValidationError("--option dialect=\(dialect): arduino-ota knows arduino and esphome")
            }
        }

        static func tagList(_ text: String?) -> [String] {
            (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        }

        /// The password of --password-env / --password-file (never an argument: those show in `ps`).
        func password() throws -> String? {
            if let passwordEnv {
                guard let password = ProcessInfo.processInfo.environment[passwordEnv], !password.isEmpty else {
                    throw ValidationError("--password-env: \(passwordEnv) is not set")
                }
                return password
            }
            if let passwordFile {
                guard let data = FileManager.default.contents(atPath: passwordFile), data.count <= 4096 else {
                    throw ValidationError("--password-file: cannot read \(passwordFile) (or larger than 4 KiB)")
                }
                guard let password = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init), !password.isEmpty else {
                    throw ValidationError("--password-file: \(passwordFile) is empty")
                }
                return password
            }
            return nil
        }

        func run() async throws {
            // Everything is read and checked before anything is written.
            let password = try password()
            let tagList = Self.tagList(tags)
            let record = DeviceRecord(
                id: DeviceRegistry.normalizedID(id), family: DeviceFamily(rawValue: family), hardware: hardware, version: version, address: address ?? "",
                firstSeen: WallClock.system.now().seconds,
                lastSeen: 0,
                tags: tagList.isEmpty ? nil : tagList.sorted().joined(separator: ","), variant: variant, proxy: proxy,
                options: DeviceRecord.encodeOptions(try DevicePush.options(deviceOptions)), segment: segment)
            try await DeviceCommand.apply(
                .add(record: record, user: password == nil ? nil : (user ?? "admin"), password: password), api: api, command: "otamesh device add")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a device from the registry, with its assignment and its stored password.")
        @OptionGroup var api: AdminOptions
        @Argument(help: "Device id.") var device: String

        func run() async throws {
            try await DeviceCommand.apply(.remove(id: device), api: api, command: "otamesh device remove")
        }
    }
}
