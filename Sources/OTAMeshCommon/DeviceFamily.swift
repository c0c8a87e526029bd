/// How a kind of device updates: it asks the gateway the way its firmware expects (a pull
/// family) or the gateway pushes to it (a push family). Stored, gossiped and printed as its
/// name; a name this build does not know (from a newer gateway's records) is kept as data.
/// Extensible like Hummingbird's error codes: a new family is one static member here and one
/// entry in ``pull`` or ``push``. The only place a family's name is spelled.
public struct DeviceFamily: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    // MARK: Pull: the device asks (DEVICE-PROTOCOLS.md)

    /// Any device reporting id, hardware and version on `GET /api/v1/check` (or a plain GET).
    public static let generic = DeviceFamily(rawValue: "generic")
    /// Arduino `ESP32httpUpdate` / `HTTPUpdate` with its `x-ESP32-*` headers.
    public static let esp32HTTPUpdate = DeviceFamily(rawValue: "esp32-httpupdate")
    /// Arduino `ESP8266httpUpdate` with its `x-ESP8266-*` headers.
    public static let esp8266HTTPUpdate = DeviceFamily(rawValue: "esp8266-httpupdate")
    /// ESP-IDF `esp_https_ota` (TLS; the image header carries the version).
    public static let espHTTPSOTA = DeviceFamily(rawValue: "esp-https-ota")
    /// The ESP8266 FOTA guide's version file and image.
    public static let esp8266FOTA = DeviceFamily(rawValue: "esp8266-fota")
    /// WiPhone's `.ini` manifest.
    public static let wiphone = DeviceFamily(rawValue: "wiphone")
    /// Eclipse hawkBit's Direct Device Integration API: SWUpdate, RAUC (rauc-hawkbit-updater).
    public static let ddi = DeviceFamily(rawValue: "ddi")

    // MARK: Push: the gateway sends ("upgrade local")

    /// ProjectMM's `/api/update` upload with its state endpoint.
    public static let projectMM = DeviceFamily(rawValue: "projectmm")
    /// A multipart upload form (ESP8266HTTPUpdateServer, ElegantOTA).
    public static let httpUpload = DeviceFamily(rawValue: "http-upload")
    /// ArduinoOTA / ESPHome's UDP invitation and TCP transfer.
    public static let arduinoOTA = DeviceFamily(rawValue: "arduino-ota")
    /// A device told a URL to fetch the image from.
    public static let fetchURL = DeviceFamily(rawValue: "fetch-url")

    /// Pull families in the order docs and help list them.
    public static let pull: [DeviceFamily] = [.esp8266HTTPUpdate, .esp32HTTPUpdate, .espHTTPSOTA, .esp8266FOTA, .wiphone, .generic, .ddi]
    /// Push families in the order docs and help list them.
    public static let push: [DeviceFamily] = [.projectMM, .httpUpload, .arduinoOTA, .fetchURL]

    public var isPush: Bool { Self.push.contains(self) }

    /// A known family by name, or nil (to refuse an unknown name typed by a user).
    public init?(known name: String) {
        guard let family = (Self.pull + Self.push).first(where: { $0.rawValue == name }) else { return nil }
        self = family
    }

    /// "projectmm, http-upload, arduino-ota, fetch-url" for help texts and errors.
    public static func names(_ families: [DeviceFamily]) -> String { families.map(\.rawValue).joined(separator: ", ") }

    public var description: String { rawValue }

    public static func < (a: DeviceFamily, b: DeviceFamily) -> Bool { a.rawValue < b.rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
