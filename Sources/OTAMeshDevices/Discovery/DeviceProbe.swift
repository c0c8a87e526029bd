import OTAMeshCommon

/// What an mDNS announcement and the probes that follow it say about a device on a device
/// segment: which push family serves it, its identity, hardware, variant and version. Pure:
/// the gateway's discovery shell browses, resolves, runs the requests ``requests(for:)`` names
/// and hands the answers to ``classify(_:address:answers:)``.
///
/// Service types (DEVICE-PROTOCOLS.md):
/// - `_arduino._tcp` — ArduinoOTA (espota); TXT `board` (e.g. `esp32dev`, `nodemcuv2`),
///   `auth_upload=yes` when a password is set, and where the firmware adds them `version` and
///   `http_port` (the port answering `GET /version`).
/// - `_esphomelib._tcp` — an ESPHome device (the `arduino-ota` adapter's `esphome` dialect). Its
///   port is the native API's (6053), not the OTA port: OTA listens on the platform's default
///   (ESPHome's `ota:` component: ESP32 3232, ESP8266 8266, RP2 2040, LibreTiny 8892; the
///   admin's `ota_port` option when configured otherwise). TXT `version` is ESPHome's own
///   version, not the firmware's: the firmware's is `project_version` (set when the YAML names an
///   `esphome: project:`); `mac`, `platform` (`ESP32`, `ESP8266`, `RP2`, a LibreTiny chip) and
///   `board` (`esp32dev`, `nodemcuv2`, …). Source: esphome `components/mdns/mdns_component.cpp`.
/// - `_http._tcp` — projectMM (answers `GET /api/state`) or an HTTP upload form
///   (ESP8266HTTPUpdateServer/ElegantOTA: `GET /update` is a form with a file field; the version
///   from `GET /version`). Other web servers are ignored.
///
/// A push counts only when the device reports the image's version after its reboot; the
/// adapters of `http-upload` and `arduino-ota` read it from `GET /version` (on `version_port`).
/// A device found without an answer there gets the announced option `confirm=none`: it is
/// registered (and shown) but never pushed by a rollout — where it could only count as a failure
/// and halt the rollout — until the admin names its version endpoint (`version_port`,
/// `version_path`) with `confirm=version`.
public enum DeviceProbe {
    public static let serviceTypes = ["_arduino._tcp", "_esphomelib._tcp", "_http._tcp"]
    /// The announced option that keeps a device out of rollouts (see the type's comment).
    public static let unconfirmable = ("confirm", "none")

    /// A browsed and resolved service, address known.
    public struct Service: Sendable, Equatable {
        public var type: String
        public var name: String
        public var address: String
        public var port: Int
        public var txt: [String: String]

        public init(type: String, name: String, address: String, port: Int, txt: [String: String]) {
            self.type = type
            self.name = name
            self.address = address
            self.port = port
            self.txt = txt
        }

        /// `HOST:PORT` (IPv6 in brackets).
        public var endpoint: String { Self.endpoint(address, port) }

        static func endpoint(_ host: String, _ port: Int) -> String {
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// One HTTP GET to run against the device: `http://HOST:port/path`.
    public struct Request: Sendable, Hashable {
        public var port: Int
        public var path: String
        public init(port: Int, path: String) {
            self.port = port
            self.path = path
        }
    }

    /// What one request answered: the status and the first 64 KiB of the body, or nil when
    /// the device could not be reached.
    public typealias Answers = [Request: (status: Int, body: [UInt8])?]

    /// What the gateway learned.
    public struct Device: Sendable, Equatable {
        public var id: String
        public var family: DeviceFamily
        /// `HOST:PORT` the adapter talks to.
        public var address: String
        public var hardware: String?
        public var variant: String?
        public var version: String?
        /// Per-device adapter settings (``PushTarget/options``).
        public var options: [String: String]
        /// One line for the registry's "last answer": how it was found.
        public var note: String
    }

    /// Why a service is not a device the gateway can push to.
    public struct Ignored: Error, Sendable, Equatable, CustomStringConvertible {
        public var service: String
        public var reason: String
        public var description: String { "\(service): \(reason)" }
    }

    /// The requests to run before ``classify(_:address:answers:)`` can decide.
    public static func requests(for service: Service) -> [Request] {
        switch service.type {
        case "_http._tcp":
            return [
                Request(port: service.port, path: "/api/state"), Request(port: service.port, path: "/update"),
                Request(port: service.port, path: "/version"),
            ]
        case "_arduino._tcp", "_esphomelib._tcp":
            // Always: whether the version endpoint answers decides whether a push can be confirmed.
            return [Request(port: httpPort(service) ?? 80, path: "/version")]
        default:
            return []
        }
    }

    public static func classify(_ service: Service, answers: Answers) -> Result<Device, Ignored> {
        let label = "\(service.name) (\(service.type) at \(service.endpoint))"
        func ignored(_ reason: String) -> Result<Device, Ignored> { .failure(Ignored(service: label, reason: reason)) }
        let id = identity(service)
        switch service.type {
        case "_arduino._tcp", "_esphomelib._tcp":
            let esphome = service.type == "_esphomelib._tcp"
            var options: [String: String] = ["dialect": esphome ? "esphome" : "arduino"]
            let httpPort = httpPort(service)
            if let httpPort { options["version_port"] = String(httpPort) }
            let reported = answer(answers, Request(port: httpPort ?? 80, path: "/version")).flatMap(versionText)
            let version = firmwareVersion(service) ?? reported
            let board = service.txt["board"] ?? service.txt["platform"]
            var note = "mDNS \(service.type)"
            if reported == nil {
                options[unconfirmable.0] = unconfirmable.1
                note += ", no version at GET :\(httpPort ?? 80)/version: confirm=none"
            }
            var address = service.endpoint
            if esphome {
                let platform = service.txt["platform"] ?? ""
                let otaPort = esphomeOTAPort(platform: platform)
                address = Service.endpoint(service.address, otaPort)
                note +=
                    ", ESPHome \(service.txt["version"].flatMap(clean) ?? "?"), API port \(service.port), OTA port \(otaPort) (\(platform.isEmpty ? "platform unknown" : platform) default)"
            }
            if service.txt["auth_upload"] == "yes" { note += ", password required" }
            let hardware = board.map(chip).flatMap { $0.hasPrefix("esp") ? $0 : nil } ?? service.txt["platform"].map { $0.lowercased() } ?? board.map(chip)
            return .success(
                Device(
                    id: id, family: .arduinoOTA, address: address, hardware: hardware,
                    variant: board.flatMap(clean), version: version, options: options, note: note))
        case "_http._tcp":
            if let state = answer(answers, Request(port: service.port, path: "/api/state")),
                let status = try? ProjectMMStatus.parse(state)
            {
                let variant = status.firmware
                return .success(
                    Device(
                        id: id, family: .projectMM, address: service.endpoint, hardware: variant.map(chip),
                        variant: variant, version: status.version, options: [:], note: "mDNS _http._tcp, projectMM /api/state"))
            }
            let update = answers[Request(port: service.port, path: "/update")] ?? nil
            let guarded = update?.status == 401
            if guarded || answer(answers, Request(port: service.port, path: "/update")).map(isUploadForm) == true {
                let version = answer(answers, Request(port: service.port, path: "/version")).flatMap(versionText)
                let board = service.txt["board"] ?? service.txt["chip"]
                var note = "mDNS _http._tcp, upload form at /update" + (guarded ? ", password required" : "")
                if version == nil { note += ", no version at GET /version: confirm=none" }
                return .success(
                    Device(
                        id: id, family: .httpUpload, address: service.endpoint, hardware: board.map(chip),
                        variant: board.flatMap(clean), version: version,
                        options: version == nil ? [unconfirmable.0: unconfirmable.1] : [:], note: note))
            }
            return ignored("neither projectMM (/api/state) nor an upload form (/update): not a push device")
        default:
            return ignored("service type not handled")
        }
    }

    /// A MAC from the TXT (`mac`, as ESPHome announces it) when there is one, else `mdns:NAME`
    /// (instance names are unique on a link).
    static func identity(_ service: Service) -> String {
        if let mac = service.txt["mac"] {
            let hex = mac.lowercased().filter(\.isHexDigit)
            if hex.count == 12 {
                return stride(from: 0, to: 12, by: 2).map { i in
                    String(hex[hex.index(hex.startIndex, offsetBy: i)..<hex.index(hex.startIndex, offsetBy: i + 2)])
                }.joined(separator: ":")
            }
        }
        return "mdns:" + service.name.lowercased().filter { !$0.isWhitespace }
    }

    /// The firmware's own version from the TXT: ArduinoOTA firmware that adds `version`; ESPHome's
    /// `project_version` (its `version` is ESPHome's).
    static func firmwareVersion(_ service: Service) -> String? {
        service.txt[service.type == "_esphomelib._tcp" ? "project_version" : "version"].flatMap(clean)
    }

    /// ESPHome's OTA port by platform (the `ota:` component's defaults).
    static func esphomeOTAPort(platform: String) -> Int {
        switch platform.uppercased() {
        case "ESP8266": 8266
        case "RP2", "RP2040": 2040
        case "ESP32", "": 3232
        default: 8892  // LibreTiny chips (BK72xx, RTL87xx, LN882x) announce their model name
        }
    }

    static func httpPort(_ service: Service) -> Int? {
        service.txt["http_port"].flatMap { Int($0) }.flatMap { (1...65535).contains($0) ? $0 : nil }
    }

    static func answer(_ answers: Answers, _ request: Request) -> [UInt8]? {
        guard let answer = answers[request] ?? nil, answer.status == 200 else { return nil }
        return answer.body
    }

    /// `esp32dev` → `esp32`, `esp32-eth` → `esp32`, `nodemcuv2`/`d1_mini` → `esp8266`.
    static func chip(_ board: String) -> String {
        let lower = board.lowercased()
        for prefix in ["esp32c3", "esp32c6", "esp32s2", "esp32s3", "esp32h2", "esp32", "esp8266"] where lower.hasPrefix(prefix) {
            return prefix
        }
        if ["nodemcu", "d1", "wemos", "esp01", "huzzah"].contains(where: lower.hasPrefix) { return "esp8266" }
        return lower.split(separator: "-").first.map(String.init) ?? lower
    }

    /// A version token from TXT or a body: printable, no spaces, at most 64 characters.
    static func clean(_ text: String) -> String? {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty, trimmed.count <= 64, trimmed.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "<" }) else { return nil }
        return trimmed
    }

    static func versionText(_ body: [UInt8]) -> String? {
        HTTPUploadAdapter.version(fromBody: String(decoding: body.prefix(4096), as: UTF8.self)).flatMap(clean)
    }

    /// An upload form: an HTML form posting a file (`type='file'` / `type="file"`).
    static func isUploadForm(_ body: [UInt8]) -> Bool {
        let text = String(decoding: body.prefix(64 << 10), as: UTF8.self).lowercased()
        return text.contains("<form") && (text.contains("type='file'") || text.contains("type=\"file\"") || text.contains("type=file"))
    }
}
