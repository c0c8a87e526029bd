import ArgumentParser
import Foundation
import OTAMeshFirmware

/// Emulates devices of every family for tests, benchmarks and the demo. This release makes
/// the firmware such devices run; the device protocols follow with the serving issues.
@main
struct DeviceSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "otamesh-devicesim",
        abstract: "Emulated devices for tests and demos.",
        subcommands: [MakeImage.self])

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
            var state = seed | 1
            builder.body = (0..<size).map { _ in
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
            let image = builder.build()
            try Data(image).write(to: URL(fileURLWithPath: output))
            print("\(output): \(chip.name) \(version), \(image.count) bytes")
        }
    }
}
