import OTAMeshTrust
import Testing

@testable import OTAMeshApps

/// Per-device settings: checked against the app version all at once, secrets kept apart, the
/// configuration file deterministic; the CSV an admin imports.
@Suite("device settings")
struct SettingsTests {
    static let release = try! AppRelease(app: AppCatalogTests.weather, firmware: "esp32/weather/2.1.0.bin", hardware: "esp32", version: "2.1.0", source: "t")

    @Test("a change applies every value or none; each bad value is one problem naming its property")
    func allOrNothing() throws {
        let good = SettingsChange.apply([("ssid", "lab"), ("volume", "7"), ("password", "pw")], to: nil, release: Self.release)
        let outcome = try good.get()
        #expect(outcome.settings.values == ["ssid": .text("lab"), "volume": .number(7)])
        #expect(outcome.settings.secrets == ["password"] && outcome.secrets == ["password": "pw"])
        #expect(!outcome.settings.stored.contains("pw\""), "the stored form never holds a password: \(outcome.settings.stored)")
        let bad = SettingsChange.apply([("ssid", "lab"), ("volume", "70"), ("colour", "red"), ("ssid", "again")], to: outcome.settings, release: Self.release)
        guard case .failure(let problems) = bad else {
            Issue.record("accepted")
            return
        }
        #expect(problems.problems.map(\.prop) == ["volume", "colour", "ssid"])
        #expect(problems.description.hasPrefix("3 problems, nothing changed:"))
    }

    @Test("settings read back from the registry's text; carried over to another app version only where still valid")
    func storedAndCarriedOver() throws {
        let outcome = try SettingsChange.apply([("ssid", "lab"), ("volume", "20"), ("password", "pw")], to: nil, release: Self.release).get()
        #expect(DeviceSettings(stored: outcome.settings.stored) == outcome.settings)
        #expect(DeviceSettings(stored: "not json") == nil && DeviceSettings(stored: nil) == nil)
        var newer = Self.release
        newer.version = "3.0.0"
        newer.properties[2].max = 10
        let moved = try SettingsChange.apply([], to: outcome.settings, release: newer).get()
        #expect(moved.settings.app == "weather-station@3.0.0")
        #expect(moved.settings.values == ["ssid": .text("lab")], "volume 20 is over the new maximum: the default applies again")
        #expect(moved.settings.secrets == ["password"])
    }

    @Test("required properties without value or default are missing; defaults fill the rest of the file")
    func missingAndEffective() throws {
        let empty = DeviceSettings(app: Self.release.reference)
        #expect(empty.missing(Self.release) == ["ssid"])
        #expect(empty.effective(Self.release) == ["volume": .number(4), "units": .text("metric"), "debug": .boolean(false)])
    }

    @Test("the configuration file is the same bytes for the same settings: sorted keys, typed values, the password included")
    func configurationFile() throws {
        let settings = try SettingsChange.apply([("ssid", "lab \\A"), ("volume", "7")], to: nil, release: Self.release).get().settings
        let bytes = ConfigurationFile.bytes(Self.release, settings: settings, secrets: ["password": "p\\w"])
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"debug":false,"password":"p\\w","ssid":"lab \\A","units":"metric","volume":7}"# + "\n")
        var keyValue = Self.release
        keyValue.config.format = .keyValue
        #expect(
            String(decoding: ConfigurationFile.bytes(keyValue, settings: settings, secrets: [:]), as: UTF8.self)
                == "debug=false\nssid=lab \\A\nunits=metric\nvolume=7\n")
    }

    @Test("a CSV import: header names the columns, quoted cells keep commas and quotes, empty cells change nothing; bad files say the line")
    func csv() throws {
        let text = "device,app,ssid,volume\r\naa:01,weather-station@2.1.0,\"net, \"\"A\"\"\",5\r\naa:02,,,9\r\n\r\n"
        let rows = try SettingsCSV.parse(Array(text.utf8), file: "s.csv").get()
        #expect(
            rows == [
                SettingsAssignment(id: "aa:01", app: "weather-station@2.1.0", set: ["ssid=net, \"A\"", "volume=5"]),
                SettingsAssignment(id: "aa:02", app: nil, set: ["volume=9"]),
            ])
        #expect(!"\(rows[0])".contains("net"), "the printed form redacts values")
        for (bad, expected) in [
            ("ssid,volume\nx,1\n", "s.csv:1: no device column"), ("device,ssid\naa,\"open\n", "s.csv:2: a quoted cell is not closed"),
            ("device,ssid\naa,1,2\n", "s.csv:2: 3 cells, the header has 2"), ("device,ssid\naa,1\nAA,2\n", "s.csv:3: device \"AA\" has a row already"),
            ("device,bad name\n", "s.csv:1: column \"bad name\" is not a property name"),
        ] {
            guard case .failure(let problems) = SettingsCSV.parse(Array(bad.utf8), file: "s.csv") else {
                Issue.record("accepted \(bad)")
                continue
            }
            #expect(problems.description.hasPrefix(expected), "\(problems)")
        }
        #expect(throws: SettingsChange.Problems.self) { try SettingsCSV.parse([0xFF, 0xFE], file: "s.csv").get() }
    }
}
