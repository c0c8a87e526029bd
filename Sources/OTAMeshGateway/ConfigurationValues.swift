import OTAMeshCommon
import OTAMeshDevices
import OTAMeshFirmware
import OTAMeshRollout
import OTAMeshTransfer
import Yams

/// Log output format.
public enum LogFormat: String, Sendable, Equatable {
    case text, json
}

/// A host and port to listen on.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A configuration value that cannot be used.
public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownKey(source: String, key: String)
    case invalid(source: String, key: String, reason: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownKey(source, key):
            if let meant = Self.meant(key) {
                "\(source): unknown configuration key '\(key)'; did you mean \(meant)?"
            } else {
                "\(source): unknown configuration key '\(key)' (known: \(AgentConfiguration.keys.map(\.file).joined(separator: ", ")))"
            }
        case let .invalid(source, _, reason): "\(source): \(reason)"
        case let .unreadable(path, reason): "config file \(path): \(reason)"
        }
    }

    /// The documented key `key` differs from only in case or underscores (`push.maxconcurrent`,
    /// `device.idle_timeout`), if any.
    static func meant(_ key: String) -> String? {
        func folded(_ text: String) -> String { text.lowercased().replacingOccurrences(of: "_", with: "") }
        return AgentConfiguration.keys.first { folded($0.file) == folded(key) }?.file
    }
}

/// Which devices a gateway updates (`devices.admission`).
public enum DeviceAdmission: String, Sendable, CaseIterable {
    /// Every device that asks (the default).
    case open
    /// Only devices an admin registered (`otamesh device add`) or accepted (`otamesh device accept`).
    case known
}
