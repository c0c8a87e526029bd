import OTAMeshTrust
import Testing

@testable import OTAMeshApps

/// The signed catalog's `custom.app` entries: read strictly, written back equal, grouped per
/// device type with versions newest first.
@Suite("app catalog")
struct AppCatalogTests {
    static let weather: JSONValue = .object([
        "name": .string("weather-station"), "description": .string("Weather station with a display"),
        "properties": .array([
            .object([
                "prop": .string("ssid"), "label": .string("WiFi SSID"), "type": .string("text"), "required": .bool(true), "pattern": .string("[^\"]{1,32}"),
            ]),
            .object(["prop": .string("password"), "label": .string("WiFi password"), "type": .string("password")]),
            .object(["prop": .string("volume"), "type": .string("number"), "min": .integer(0), "max": .integer(21), "default": .integer(4)]),
            .object([
                "prop": .string("units"), "type": .string("select"), "choices": .array([.string("metric"), .string("imperial")]), "default": .string("metric"),
            ]),
            .object(["prop": .string("debug"), "type": .string("boolean"), "default": .bool(false)]),
        ]),
        "filesystem": .object([
            "type": .string("spiffs"), "page-size": .integer(256), "block-size": .integer(4096), "use-magic-len": .bool(true),
            "aligned-obj-ix-tables": .bool(false), "meta-len": .integer(4), "offset": .string("0x210000"), "size": .string("0x1F0000"),
        ]),
        "parts": .array([.object(["name": .string("bootloader"), "target": .string("esp32/weather/bootloader.bin"), "offset": .string("0x1000")])]),
    ])

    static func target(_ path: String, hardware: String = "esp32", version: String, app: JSONValue?) -> TargetFile {
        var custom: KeyValuePairsBuilder = [("hardware", .string(hardware)), ("version", .string(version)), ("format", .string("esp32-app"))]
        if let app { custom.append(("app", app)) }
        var object = JSONObject()
        for (key, value) in custom { object[key] = value }
        return TargetFile(path: path, length: 1000, hashes: ["sha256": String(repeating: "a", count: 64)], custom: .object(object))
    }
    typealias KeyValuePairsBuilder = [(String, JSONValue)]

    @Test("an App Fairy-style entry reads with every property, filesystem parameter and part; written back, it reads equal")
    func readsAndRoundTrips() throws {
        let release = try AppRelease(app: Self.weather, firmware: "esp32/weather/2.1.0.bin", hardware: "esp32", version: "2.1.0", source: "t")
        #expect(release.reference == "weather-station@2.1.0")
        #expect(release.properties.map(\.prop) == ["ssid", "password", "volume", "units", "debug"])
        #expect(release.property("volume")?.defaultValue == .number(4))
        #expect(release.property("ssid")?.required == true)
        #expect(release.filesystem == FilesystemSpec(kind: .spiffs, offset: 0x210000, size: 0x1F0000))
        #expect(release.parts == [FlashPartSpec(name: "bootloader", target: "esp32/weather/bootloader.bin", offset: 0x1000)])
        #expect(release.config == ConfigLocation(path: "/config.json", format: .json))
        let again = try AppRelease(app: release.json, firmware: release.firmware, hardware: "esp32", version: "2.1.0", source: "t")
        #expect(again == release)
    }

    @Test(
        "a bad entry is refused with the field and the reason",
        arguments: [
            (
                "properties", JSONValue.array([.object(["prop": .string("v"), "type": .string("number"), "max": .integer(21), "default": .integer(30)])]),
                "properties[0].default: 30 is above the maximum 21"
            ),
            (
                "properties", .array([.object(["prop": .string("p"), "type": .string("password"), "default": .string("x")])]),
                "properties[0].default: a password property has no default"
            ),
            ("properties", .array([.object(["prop": .string("u"), "type": .string("select")])]), "properties[0].choices: a select property needs its choices"),
            (
                "properties", .array([.object(["prop": .string("s"), "type": .string("txt")])]),
                "properties[0].type: \"txt\": one of text, password, number, boolean, select"
            ),
            (
                "properties", .array([.object(["prop": .string("s"), "type": .string("text"), "requried": .bool(true)])]),
                "properties[0].requried: not a field here"
            ),
            (
                "properties", .array([.object(["prop": .string("s"), "type": .string("text"), "pattern": .string("([a-z")])]),
                "properties[0].pattern: not a regular expression"
            ),
            ("filesystem", .object(["type": .string("fat"), "offset": .integer(0), "size": .integer(4096)]), "filesystem.type: \"fat\": spiffs or littlefs"),
            ("filesystem", .object(["offset": .integer(0), "size": .integer(5000)]), "filesystem.size: 5000 is not a multiple of block-size 4096"),
            (
                "filesystem", .object(["type": .string("littlefs"), "offset": .integer(0), "size": .integer(4096), "page-size": .integer(256)]),
                "filesystem.page-size: a SPIFFS parameter"
            ),
        ])
    func refusesBadEntries(field: String, value: JSONValue, expected: String) {
        var object = Self.weather.objectValue!
        object[field] = value
        do {
            _ = try AppRelease(app: .object(object), firmware: "fw.bin", hardware: "esp32", version: "1.0.0", source: "app.yaml")
            Issue.record("accepted \(field)")
        } catch {
            #expect(error.description.hasPrefix("app.yaml: \(expected)"), "\(error)")
        }
    }

    @Test("properties without a filesystem are refused: the configuration would have nowhere to go")
    func propertiesNeedAFilesystem() {
        var object = Self.weather.objectValue!
        object["filesystem"] = nil
        #expect(throws: AppSpecError.self) { try AppRelease(app: .object(object), firmware: "fw.bin", hardware: "esp32", version: "1.0.0", source: "t") }
    }

    @Test("the catalog groups by device type and app, newest version first; an unreadable entry is a problem, the rest still listed")
    func groups() {
        var broken = Self.weather.objectValue!
        broken["name"] = .string("bad name!")
        let catalog = AppCatalog(targets: [
            Self.target("esp32/weather/2.0.0.bin", version: "2.0.0", app: Self.weather),
            Self.target("esp32/weather/2.10.0.bin", version: "2.10.0", app: Self.weather),
            Self.target("esp32/weather/2.9.0.bin", version: "2.9.0", app: Self.weather),
            Self.target("esp8266/weather/1.0.0.bin", hardware: "esp8266", version: "1.0.0", app: Self.weather),
            Self.target("esp32/plain.bin", version: "1.0.0", app: nil),
            Self.target("esp32/broken.bin", version: "3.0.0", app: .object(broken)),
        ])
        #expect(catalog.apps.map { "\($0.hardware)/\($0.name)" } == ["esp32/weather-station", "esp8266/weather-station"])
        #expect(catalog.apps.first?.versions.map(\.version) == ["2.10.0", "2.9.0", "2.0.0"])
        #expect(catalog.problems.count == 1 && catalog.problems.first?.source == "esp32/broken.bin")
        #expect(catalog.release("weather-station", hardware: "esp32")?.version == "2.10.0")
        #expect(catalog.release("weather-station@2.9.0", hardware: "esp32")?.firmware == "esp32/weather/2.9.0.bin")
        #expect(catalog.release("weather-station") == nil, "ambiguous across device types")
        #expect(catalog.release(hardware: "esp8266", runningVersion: "1.0.0")?.name == "weather-station")
    }

    @Test(
        "values typed as an admin types them are checked against the property",
        arguments: [
            ("volume", "7", "ok"), ("volume", " 21 ", "ok"), ("volume", "22", "volume: 22 is above the maximum 21"),
            ("volume", "loud", "volume: \"loud\" is not a whole number"),
            ("units", "imperial", "ok"), ("units", "kelvin", "units: \"kelvin\" is not one of metric, imperial"),
            ("debug", "yes", "ok"), ("debug", "maybe", "debug: \"maybe\" is not true or false"),
            ("ssid", "lab-net", "ok"), ("ssid", "a\"b", "ssid: \"a\\\"b\" does not match the pattern [^\"]{1,32}"),
            ("ssid", "bad\nline", "ssid: \"bad\\u{a}line\" holds a control character"),
            ("password", "s3cret\u{7}", "password: the value holds a control character"),
        ])
    func checksValues(prop: String, text: String, expected: String) throws {
        let release = try AppRelease(app: Self.weather, firmware: "fw.bin", hardware: "esp32", version: "2.1.0", source: "t")
        let property = try #require(release.property(prop))
        switch property.value(from: text) {
        case .success: #expect(expected == "ok")
        case .failure(let problem): #expect(problem.description == expected)
        }
    }
}
