import OTAMeshApps
import OTAMeshFirmware
import OTAMeshTrust

extension FuzzTargets {
    /// The filesystem readers a device emulator mounts images with (SPIFFS, LittleFS): the first
    /// bytes pick the filesystem and its parameters, the rest is the image. Every input is
    /// refused or read, never a crash.
    @Sendable static func filesystemImage(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let littlefs = input.byte() & 1 == 1
        let shift = input.pick(4)
        let image = input.rest()
        if littlefs {
            let blockSize = 128 << shift
            let parameters = LittleFSParameters(blockSize: blockSize, blockCount: max(2, image.count / blockSize))
            _ = try? LittleFSImage.read(image, parameters: parameters)
        } else {
            let pageSize = 64 << shift
            let parameters = SPIFFSParameters(imageSize: image.count, pageSize: pageSize, blockSize: pageSize * 16)
            _ = try? SPIFFSImage.read(image, parameters: parameters)
        }
    }

    /// What an app catalog is read from: a target's `custom.app` JSON (the first byte says
    /// where the JSON ends; the rest is also read as a settings CSV an admin imports).
    @Sendable static func appCatalog(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let split = min(data.count, input.u16())
        let json = Array(data.dropFirst(2).prefix(split))
        let csv = Array(data.dropFirst(2 + split))
        if let value = try? JSONValue.parse(json) {
            let release = try? AppRelease(app: value, firmware: "fw.bin", hardware: "esp32", version: "1.0.0", source: "fuzz")
            var custom = JSONObject()
            custom["hardware"] = .string("esp32")
            custom["version"] = .string("1.0.0")
            custom["app"] = value
            _ = AppCatalog(targets: [TargetFile(path: "fw.bin", length: 1, hashes: [:], custom: .object(custom))])
            if let release {
                _ = release.json
                if let rows = try? SettingsCSV.parse(csv, file: "fuzz.csv").get() {
                    for row in rows.prefix(16) {
                        let (assignments, _) = SettingsChange.assignments(row.set)
                        if case .success(let outcome) = SettingsChange.apply(assignments, unset: row.unset, to: nil, release: release) {
                            _ = ConfigurationFile.bytes(release, settings: outcome.settings, secrets: outcome.secrets)
                        }
                    }
                }
            }
        }
        _ = try? SettingsCSV.parse(csv, file: "fuzz.csv").get()
    }
}
