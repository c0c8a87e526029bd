import ArgumentParser
import Foundation
import OTAMeshFirmware

/// `make-image`: writes a valid ESP32-family app image.
struct MakeImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-image",
        abstract: "Write a valid ESP32-family app image (checked by esptool image-info and otamesh image inspect).")

    @Option(help: "Chip: esp32, esp32s2, esp32s3, esp32c2, esp32c3, esp32c6, esp32h2, esp32p4, …") var chip = "esp32"
    @Option(help: "Version string for esp_app_desc_t (e.g. 2.1.0-dev.7).") var version: String
    @Option(help: "Project name.") var project = "otamesh-demo"
    @Option(help: "Secure version (anti-rollback counter).") var secureVersion: UInt32 = 0
    @Option(help: "Bytes of deterministic application body.") var size = 4096
    @Option(help: "Seed for the body bytes (different seeds, different images).") var seed: UInt64 = 1
    @Flag(help: "Do not append the SHA-256.") var noDigest = false
    @Option(name: .shortAndLong, help: "Output file.") var output: String

    func run() throws {
        guard let chip = ESPChip.named(chip) else {
            throw ValidationError("unknown chip '\(self.chip)' (known: \(ESPChip.known.values.map(\.name).sorted().joined(separator: ", ")))")
        }
        guard (0...(64 << 20)).contains(size) else { throw ValidationError("--size must be 0…64 MiB") }
        var builder = ESP32ImageBuilder(chip: chip, version: version, projectName: project)
        builder.secureVersion = secureVersion
        builder.hashAppended = !noDigest
        builder.body = DeterministicBytes.make(count: size, seed: seed)
        let image = builder.build()
        try Data(image).write(to: URL(fileURLWithPath: output))
        print("\(output): \(chip.name) \(version), \(image.count) bytes")
    }
}
