import ArgumentParser
import Foundation
import OTAMeshApps
import OTAMeshCommon
import OTAMeshFirmware
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTrust

/// `otamesh provision`: a new device's first flash by serial — app and configuration in one
/// aggregated image (apps.md, "Serial bootstrap").
struct ProvisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Write a device's first flash image: the catalog's bootloader and partition table, the app, its configuration filesystem; gaps 0xFF.",
        discussion: """
            The image is what `esptool merge-bin` writes from the same parts, and the command prints the `esptool write-flash` line for it; \
            with --port it runs esptool itself. The device's settings come from `otamesh device config set` (or defaults); an image that \
            holds a password is written 0600.
            """)

    @OptionGroup var options: ConfigOptions
    @Option(help: "The device id (its settings and app version).") var device: String
    @Option(help: "The app version, NAME@VERSION (default: the one its settings were made for).") var app: String?
    @Option(name: .shortAndLong, help: "The merged image to write.") var out: String
    @Option(help: "Serial port: flash the image with esptool now (e.g. /dev/ttyUSB0).") var port: String?
    @Option(help: "Serial speed for --port.") var baud = 460_800

    func run() throws {
        let configuration = try options.load(command: "otamesh provision")
        let directory = configuration.dataDirectory
        let id = DeviceRegistry.normalizedID(device)
        let (release, image, merged) = try reporting("otamesh provision") { () throws -> (AppRelease, ConfigurationImage?, [UInt8]) in
            let data = try GatewayAppData(directory: directory)
            let (store, trusted) = (data.store, data.trusted)
            let record = data.registry.device(id)
            let settings = DeviceSettings(stored: record?.settings)
            guard let reference = app ?? settings?.app else {
                throw CommandFailure(
                    "\(id) has no app settings: name its app with --app NAME@VERSION (otamesh apps), or set them first (otamesh device config set)")
            }
            guard let release = data.catalog.release(reference, preferring: record?.hardware) else {
                throw CommandFailure("no app \(reference) in the trusted release (otamesh apps)")
            }
            let secrets = try DeviceSecretStore(
                path: DeviceSecretStore.path(dataDirectory: directory), allowOpenPermissions: configuration.insecurePermissions
            ).settingSecrets(for: id)
            let current = settings.flatMap { $0.app == release.reference ? $0 : nil } ?? DeviceSettings(app: release.reference)
            let image = release.filesystem == nil ? nil : try ConfigurationImage.build(release, settings: current, secrets: secrets)
            func bytes(of path: String) throws -> [UInt8] {
                guard let (target, cached) = trusted.first(where: { $0.0.path == path }), let hex = target.hashes["sha256"] else {
                    throw CommandFailure("\(path) is not a trusted target")
                }
                guard cached else { throw CommandFailure("\(path) is not in this gateway's cache yet (otamesh import, or wait for the mesh)") }
                return try store.read(try BlobDigest(hex: hex))
            }
            var parts: [String: [UInt8]] = [:]
            for part in release.parts { parts[part.target] = try bytes(of: part.target) }
            let flash = SerialBootstrap.parts(release, firmware: try bytes(of: release.firmware), parts: parts, configuration: image)
            return (release, image, try MergedFlashImage.merge(flash))
        }
        try reporting("otamesh provision") {
            let url = URL(fileURLWithPath: out)
            try Data(merged).write(to: url, options: .atomic)
            chmod(out, image?.holdsSecret == true ? 0o600 : 0o644)
        }
        let chip = SerialBootstrap.esptoolChip(hardware: release.hardware)
        let flash = ["--chip", chip] + MergedFlashImage.writeFlashArguments(file: out)
        Output.out(
            "wrote \(out): \(merged.count) bytes — \(release.reference)"
                + (image.map { ", configuration \($0.configID) at 0x\(String(release.filesystem?.offset ?? 0, radix: 16))" } ?? "")
                + (image?.holdsSecret == true ? " (holds a password: keep the file private)" : ""))
        guard let port else {
            Output.out("flash it: python3 -m esptool --port PORT " + flash.joined(separator: " "))
            return
        }
        guard Self.esptoolAvailable() else {
            Output.err(
                "otamesh provision: esptool is not installed; install it (python3 -m pip install esptool, or apt install esptool) and run: python3 -m esptool --port \(port) \(flash.joined(separator: " "))"
            )
            throw ExitCode(1)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "esptool", "--port", port, "--baud", String(baud)] + flash
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            Output.err("otamesh provision: esptool exited with \(process.terminationStatus); the image is still at \(out)")
            throw ExitCode(1)
        }
        Output.out("flashed \(port)")
    }

    static func esptoolAvailable() -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "esptool", "version"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
