/// The `.ini` manifest the WiPhone firmware fetches (playfultechnology/wiphone ota.cpp): the
/// phone reads `version` and `url` from NanoIni section 0 — the text *before* any `[section]`
/// line — with the key exactly as written before `=` (no trimming). So the keys stand at the
/// top, no header, no spaces. `url` must be an absolute https:// URL (the phone updates with
/// arduino-esp32 HTTPUpdate over WiFiClientSecure).
public struct WiPhoneManifest: Sendable, Equatable {
    public static let fileName = "WiPhone-phone.ini"

    public var version: String
    public var url: String

    public init(version: String, url: String) {
        self.version = version
        self.url = url
    }

    public func render() -> String {
        "version=\(version)\nurl=\(url)\n"
    }
}
