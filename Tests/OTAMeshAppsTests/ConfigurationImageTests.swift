import OTAMeshFirmware
import OTAMeshTrust
import Testing

@testable import OTAMeshApps

/// A device's configuration image: deterministic, named by its config-id, readable with the
/// app build's parameters; and the serial image's parts.
@Suite("configuration images")
struct ConfigurationImageTests {
    static let release = SettingsTests.release

    static func settings(_ pairs: [(String, String)]) throws -> DeviceSettings {
        try SettingsChange.apply(pairs, to: nil, release: release).get().settings
    }

    @Test("the same settings give the same bytes; another value gives another config-id; the image reads back with the app's parameters")
    func deterministic() throws {
        let settings = try Self.settings([("ssid", "lab"), ("volume", "7")])
        let one = try ConfigurationImage.build(Self.release, settings: settings, secrets: ["password": "pw"])
        let two = try ConfigurationImage.build(Self.release, settings: settings, secrets: ["password": "pw"])
        #expect(one == two)
        #expect(one.holdsSecret && one.configID.hasPrefix("cfg-") && one.configID.count == 20)
        #expect(one.bytes.count == 0x1F0000)
        let other = try ConfigurationImage.build(Self.release, settings: try Self.settings([("ssid", "lab"), ("volume", "8")]), secrets: ["password": "pw"])
        #expect(other.configID != one.configID && other.bytes != one.bytes)
        let noSecret = try ConfigurationImage.build(Self.release, settings: settings, secrets: [:])
        #expect(!noSecret.holdsSecret && noSecret.configID != one.configID)
        let files = try ConfigurationImage.files(one.bytes, spec: try #require(Self.release.filesystem))
        #expect(files.map(\.path) == ["/config.json"])
        #expect(files.first?.contents == one.file)
        #expect(String(decoding: one.file, as: UTF8.self).contains("\"config-id\":\"\(one.configID)\""))
    }

    @Test("LittleFS apps get a LittleFS image that reads back")
    func littlefs() throws {
        var release = Self.release
        release.filesystem = FilesystemSpec(kind: .littlefs, offset: 0x300000, size: 64 * 4096)
        let image = try ConfigurationImage.build(release, settings: try Self.settings([("ssid", "lab")]), secrets: [:])
        #expect(image.bytes.count == 64 * 4096)
        let files = try ConfigurationImage.files(image.bytes, spec: try #require(release.filesystem))
        #expect(files.map(\.contents) == [image.file])
    }

    @Test("no image without the required values, without a filesystem, or when the build's parameters cannot hold the file")
    func refusals() throws {
        #expect(throws: ConfigurationImageError.missing(app: "weather-station@2.1.0", props: ["ssid"])) {
            try ConfigurationImage.build(Self.release, settings: DeviceSettings(app: Self.release.reference), secrets: [:])
        }
        var bare = Self.release
        bare.filesystem = nil
        #expect(throws: ConfigurationImageError.noFilesystem(app: "weather-station@2.1.0")) {
            try ConfigurationImage.build(bare, settings: try Self.settings([("ssid", "lab")]), secrets: [:])
        }
        var tiny = Self.release
        tiny.filesystem = FilesystemSpec(kind: .spiffs, offset: 0, size: 8192, pageSize: 256, blockSize: 4096, nameLength: 8)
        do {
            _ = try ConfigurationImage.build(tiny, settings: try Self.settings([("ssid", "lab")]), secrets: [:])
            Issue.record("a name longer than obj-name-len was stored")
        } catch {
            #expect("\(error)".hasPrefix("weather-station@2.1.0: SPIFFS"), "\(error)")
        }
    }

    @Test("the serial image's parts: catalog parts, the app at its offset, the configuration at the filesystem's, in address order")
    func serialParts() throws {
        let image = try ConfigurationImage.build(Self.release, settings: try Self.settings([("ssid", "lab")]), secrets: [:])
        let parts = SerialBootstrap.parts(Self.release, firmware: [0xE9, 1, 2], parts: ["esp32/weather/bootloader.bin": [0xE9, 9]], configuration: image)
        #expect(parts.map(\.offset) == [0x1000, 0x10000, 0x210000])
        #expect(parts.map(\.name) == ["bootloader", "esp32/weather/2.1.0.bin", "spiffs /config.json"])
        #expect(SerialBootstrap.esptoolChip(hardware: "esp32s3-eth") == "esp32s3")
        #expect(SerialBootstrap.esptoolChip(hardware: "esp32") == "esp32")
        #expect(SerialBootstrap.esptoolChip(hardware: "w800") == "auto")
    }
}
