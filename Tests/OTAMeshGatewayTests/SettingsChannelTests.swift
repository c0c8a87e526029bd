import OTAMeshApps
import OTAMeshGossip
import Testing

@testable import OTAMeshGateway

/// `cfg/DEVICE-ID` records: a device's settings from several gateways, the newest counting.
@Suite("settings channel")
struct SettingsChannelTests {
    static func record(_ owner: String, _ device: String, at: Int64?, volume: Int64 = 1) -> ChannelRecord<DeviceSettings?> {
        ChannelRecord(owner: owner, name: device, version: 1, value: DeviceSettings(app: "a@1", values: ["volume": .number(volume)], at: at))
    }

    @Test("of a device's settings on several gateways the newest count; equal times go to the greater gateway name; retractions and other devices apart")
    func newest() {
        let merged = SettingsChannel.merge([
            Self.record("gw1", "d1", at: 100, volume: 1), Self.record("gw2", "d1", at: 200, volume: 2), Self.record("gw3", "d1", at: 150, volume: 3),
            Self.record("gw1", "d2", at: 50, volume: 4), Self.record("gw2", "d2", at: 50, volume: 5),
            ChannelRecord(owner: "gw3", name: "d3", version: 1, value: nil),
        ])
        #expect(merged["d1"]?.owner == "gw2" && merged["d1"]?.settings.values["volume"] == .number(2))
        #expect(merged["d2"]?.owner == "gw2")
        #expect(merged["d3"] == nil)
    }

    @Test("a record reads back as written, and a value that is not settings is no record")
    func codec() {
        let settings = DeviceSettings(app: "a@1", values: ["ssid": .text("lab")], secrets: ["password"], address: "10.0.0.5", at: 7)
        #expect(SettingsChannel.decode(name: "d1", SettingsChannel.encode(settings)) == .some(settings))
        #expect(SettingsChannel.decode(name: "d1", []) == .some(nil))
        #expect(SettingsChannel.decode(name: "d1", Array("{\"password\":\"x\"}".utf8)) == nil)
        #expect(!String(decoding: SettingsChannel.encode(settings), as: UTF8.self).contains("lab\",\"password"), "only the names of secrets")
    }
}
