import Foundation
import GRDB
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshFirmware
import OTAMeshStore

extension DeviceFamily: DatabaseValueConvertible {}

public struct DeviceRecord: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "device"

    /// Lower-case MAC (`aa:bb:cc:dd:ee:ff`), a path id, or `ip:ADDRESS`.
    public var id: String
    /// A pull family (``DeviceFamily/pull``) or a push family (``DeviceFamily/push``).
    public var family: DeviceFamily
    public var hardware: String?
    public var version: String?
    public var address: String
    public var firstSeen: Double
    public var lastSeen: Double
    /// The target path an admin (later: a rollout) assigned; nil = stay as is.
    public var assignedTarget: String?
    /// What the gateway last answered: `offered PATH`, `up to date`, `no assignment`, `incompatible: …`.
    public var lastAnswer: String?
    /// Admin-given tags, comma-separated (`floor2,lobby`): rollout selectors match them.
    public var tags: String?
    /// The firmware variant the device reports (e.g. `esp32-eth`), if its family says.
    public var variant: String?
    /// `http://HOST:PORT` of the HTTP proxy a push device is reached through (admin-set).
    public var proxy: String?
    /// Per-device adapter options, a JSON object of strings (admin-set; see ``optionMap``).
    public var options: String?
    /// The network segment the device is in, for push limits (admin-set; nil: ``effectiveSegment``
    /// derives it from the address).
    public var segment: String?
    /// How the device became known: `request` (it asked), `manual` (`otamesh device add`), `mdns`.
    public var source: String?
    /// Adapter options the device's own announcement gave (discovery: `dialect`, `version_port`),
    /// a JSON object of strings; the admin's ``options`` override them key by key.
    public var announced: String?
    /// The device's app settings (``DeviceSettings/stored``: app version and non-secret values;
    /// password values live in the secret store), admin-set with `otamesh device config`.
    public var settings: String?
    /// The DDI action of its manual assignment that closed with a failure: not offered again
    /// until an admin assigns (again).
    public var failedAction: Int64?

    /// ``tags`` as a list.
    public var tagList: [String] { (tags ?? "").split(separator: ",").map(String.init) }

    /// ``announced`` overlaid with ``options`` (the admin's word wins), as a map (empty when none
    /// or unreadable).
    public var optionMap: [String: String] {
        (Self.decodeOptions(announced) ?? [:]).merging(Self.decodeOptions(options) ?? [:]) { _, admin in admin }
    }

    /// A push could not confirm this device's version (``DeviceProbe/unconfirmable``, unless the
    /// admin lifted it): rollouts leave it out.
    public var unconfirmable: Bool { optionMap[DeviceProbe.unconfirmable.0] == DeviceProbe.unconfirmable.1 }

    /// ``segment``, or the one derived from the address (``segment(forAddress:)``).
    /// Registered or accepted by an admin (`otamesh device add`, `device accept`, `device
    /// assign`): updated under `devices.admission: known`; any other device waits as pending.
    public var admitted: Bool { source == "manual" || source == "accepted" || assignedTarget != nil }

    public var effectiveSegment: String { segment ?? Self.segment(forAddress: address) }

    public init(
        id: String, family: DeviceFamily, hardware: String? = nil, version: String? = nil, address: String,
        firstSeen: Double, lastSeen: Double, assignedTarget: String? = nil, lastAnswer: String? = nil,
        tags: String? = nil, variant: String? = nil, proxy: String? = nil, options: String? = nil, segment: String? = nil,
        source: String? = nil, announced: String? = nil, settings: String? = nil, failedAction: Int64? = nil
    ) {
        self.failedAction = failedAction
        self.announced = announced
        self.settings = settings
        self.id = id
        self.family = family
        self.hardware = hardware
        self.version = version
        self.address = address
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.assignedTarget = assignedTarget
        self.lastAnswer = lastAnswer
        self.tags = tags
        self.variant = variant
        self.proxy = proxy
        self.options = options
        self.segment = segment
        self.source = source
    }

    /// A segment name from an address: an IPv4 host's /24 (`10.77.3.0/24`), an IPv6 host's /64
    /// (`fd00:1:2:3::/64`), `other` for names and anything else.
    public static func segment(forAddress address: String) -> String {
        let host = address.isEmpty ? "" : PushTarget.hostAndPort(address, defaultPort: 80).host
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) {
            return "\(octets[0]).\(octets[1]).\(octets[2]).0/24"
        }
        if host.contains(":"), let bytes = SiteCA.ipBytes(host), bytes.count == 16 {
            return SiteCA.slash64(bytes)
        }
        return "other"
    }

    /// Options as stored: a JSON object of strings with sorted keys; nil when there are none.
    public static func encodeOptions(_ options: [String: String]) -> String? {
        guard !options.isEmpty else { return nil }
        return "{" + options.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(options[$0] ?? ""))" }.joined(separator: ",") + "}"
    }

    static func decodeOptions(_ text: String?) -> [String: String]? {
        guard let text, let data = text.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: String]
    }
}

/// What one request told the gateway about a device.
public struct DeviceSighting: Sendable, Equatable {
    public var id: String
    public var family: DeviceFamily
    public var hardware: String?
    public var version: String?
    public var address: String
    public var answer: String
    /// The firmware variant the device reported (projectMM's `firmware`), if any.
    public var variant: String?
    /// How the gateway learnt of it: `request` (it asked), `mdns` (discovery); kept from the
    /// first sighting on.
    public var source: String
    /// Adapter options the announcement gave (``DeviceRecord/announced``): a discovery sighting
    /// (`source` mdns) replaces them, empty or not; another leaves them unchanged when empty.
    public var options: [String: String]
    /// In httpUpdate filesystem mode: the config-id the device reported (its `version` header
    /// there), and whether it is the current one; not stored, the shell tells the rollouts.
    public var configuration: (reported: String, current: Bool)?

    public static func == (a: DeviceSighting, b: DeviceSighting) -> Bool {
        a.id == b.id && a.family == b.family && a.hardware == b.hardware && a.version == b.version && a.address == b.address && a.answer == b.answer
            && a.variant == b.variant && a.source == b.source && a.options == b.options && a.configuration?.reported == b.configuration?.reported
            && a.configuration?.current == b.configuration?.current
    }

    public init(
        id: String, family: DeviceFamily, hardware: String? = nil, version: String? = nil, address: String, answer: String, variant: String? = nil,
        source: String = "request", options: [String: String] = [:]
    ) {
        self.options = options
        self.id = id
        // Everything a device sends is bounded before it is stored (a 25,000-character version
        // must not sit in memory and on disk); the id is checked by ``isStorable``.
        self.family = DeviceFamily(rawValue: Self.bounded(family.rawValue, 32))
        self.hardware = hardware.map { Self.bounded($0, Self.maxField) }
        self.version = version.map { Self.bounded($0, Self.maxField) }
        self.address = Self.bounded(address, 64)
        self.answer = Self.bounded(answer, 200)
        self.variant = variant.map { Self.bounded($0, Self.maxField) }
        self.source = source
    }

    public static let maxID = 128
    public static let maxField = 64

    /// An id the registry keeps: 1 to ``maxID`` bytes without NUL (SQLite and memory must agree
    /// on every key); another sighting is answered but not stored.
    public var isStorable: Bool { !id.isEmpty && id.utf8.count <= Self.maxID && !id.utf8.contains(0) }

    static func bounded(_ text: String, _ limit: Int) -> String {
        guard text.unicodeScalars.count > limit else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.prefix(limit))
        return String(scalars)
    }
}

/// Errors of the device registry.
public struct RegistryError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): device registry: \(reason)" }
}
