import Foundation

/// What a projectMM device says about its firmware in `GET /api/state`: the FirmwareUpdate
/// module's status slot (the OTA phase) and its controls `version`, `firmware` and
/// `update_pct` (bytes / total). See docs/devices.md for the wire shape and its source.
public struct ProjectMMStatus: Sendable, Equatable {
    /// The OTA phase in the module's status slot.
    public enum Phase: Sendable, Equatable, CustomStringConvertible {
        case idle, starting, downloading, flashing, rebooting
        /// `error: <reason>`: the reason as the device words it.
        case error(String)
        /// A status the firmware of today does not use; followed like `starting`.
        case other(String)

        public init(_ text: String) {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            switch trimmed {
            case "", "idle": self = .idle
            case "starting": self = .starting
            case "downloading": self = .downloading
            case "flashing": self = .flashing
            case "rebooting": self = .rebooting
            default:
                if trimmed.hasPrefix("error:") {
                    self = .error(String(trimmed.dropFirst("error:".count)).trimmingCharacters(in: .whitespaces))
                } else {
                    self = .other(trimmed)
                }
            }
        }

        public var description: String {
            switch self {
            case .idle: "idle"
            case .starting: "starting"
            case .downloading: "downloading"
            case .flashing: "flashing"
            case .rebooting: "rebooting"
            case .error(let reason): "error: \(reason)"
            case .other(let text): text
            }
        }
    }

    public var phase: Phase
    /// `update_pct`: bytes written so far and the image size (0 until the device knows it).
    public var bytes: Int64
    public var total: Int64
    /// The running firmware's version (SemVer) and variant key (`esp32`, `esp32-eth`, …).
    public var version: String?
    public var firmware: String?

    public init(phase: Phase, bytes: Int64 = 0, total: Int64 = 0, version: String?, firmware: String?) {
        self.phase = phase
        self.bytes = bytes
        self.total = total
        self.version = version
        self.firmware = firmware
    }

    /// Why an answer is not a projectMM state.
    public struct Unreadable: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Reads the `/api/state` body: `{"modules":[{"name","type","status"?,"controls":[{"name",
    /// "type","value", "max"?}…]}…]}`. The phase comes from the module of type
    /// `FirmwareUpdateModule` (no status: idle); `version` and `firmware` from its controls, or
    /// from any module's (SystemModule carries `firmware` too).
    public static func parse(_ body: [UInt8]) throws(Unreadable) -> ProjectMMStatus {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let modules = object["modules"] as? [[String: Any]]
        else { throw Unreadable(reason: "not a projectMM /api/state answer (no \"modules\" list)") }
        var all: [[String: Any]] = []
        func walk(_ list: [[String: Any]], depth: Int) {
            guard depth < 8 else { return }
            for module in list {
                all.append(module)
                if let children = module["children"] as? [[String: Any]] { walk(children, depth: depth + 1) }
            }
        }
        walk(modules, depth: 0)
        guard let firmwareModule = all.first(where: { $0["type"] as? String == "FirmwareUpdateModule" }) else {
            throw Unreadable(reason: "no FirmwareUpdateModule in /api/state (firmware without OTA status)")
        }
        func controls(_ module: [String: Any]) -> [[String: Any]] { module["controls"] as? [[String: Any]] ?? [] }
        func string(_ name: String) -> String? {
            for module in [firmwareModule] + all {
                if let control = controls(module).first(where: { $0["name"] as? String == name }), let value = control["value"] as? String {
                    return value
                }
            }
            return nil
        }
        func number(_ value: Any?) -> Int64? { (value as? NSNumber).map { $0.int64Value } }
        var bytes: Int64 = 0
        var total: Int64 = 0
        if let progress = controls(firmwareModule).first(where: { $0["name"] as? String == "update_pct" }) {
            if let value = progress["value"] as? [String: Any] {
                bytes = number(value["bytes"] ?? value["value"]) ?? 0
                total = number(value["total"] ?? value["max"]) ?? 0
            } else {
                bytes = number(progress["value"]) ?? 0
                total = number(progress["max"] ?? progress["total"]) ?? 0
            }
        }
        return ProjectMMStatus(
            phase: Phase(firmwareModule["status"] as? String ?? "idle"), bytes: max(0, bytes), total: max(0, total),
            version: string("version"), firmware: string("firmware"))
    }
}

/// projectMM's firmware-variant rule (install-picker `isCompatible()`): strip `-eth…` from both
/// keys, then they must be equal. `esp32`, `esp32-eth` and `esp32-eth-wifi` are one family;
/// `esp32s3-n16r8` is only itself.
public enum ProjectMMVariant {
    public static func key(_ variant: String) -> String {
        let lower = variant.lowercased()
        guard let range = lower.range(of: "-eth") else { return lower }
        return String(lower[..<range.lowerBound])
    }

    public static func compatible(_ a: String, _ b: String) -> Bool { key(a) == key(b) }
}
