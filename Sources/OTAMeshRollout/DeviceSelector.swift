/// What the plan knows about one device when it decides whether the rollout applies to it.
public struct DeviceFacts: Sendable, Hashable {
    public var id: String
    public var hardware: String?
    /// The firmware variant the device reports (e.g. projectMM's `esp32-eth`), if any.
    public var variant: String?
    public var tags: Set<String>
    /// The gateway that serves the device.
    public var gateway: String
    /// The version the device last reported, if any (a device already on the target counts as
    /// succeeded from this report alone).
    public var version: String?
    /// Milliseconds (Unix) when its gateway first saw it; nil: unknown (taken as always known).
    /// A plan's device set is fixed when each stage starts: devices first seen later are left out
    /// unless the plan is dynamic.
    public var firstSeen: Int64?

    public init(
        id: String, hardware: String? = nil, variant: String? = nil, tags: Set<String> = [], gateway: String,
        version: String? = nil, firstSeen: Int64? = nil
    ) {
        self.id = id
        self.hardware = hardware
        self.variant = variant
        self.tags = tags
        self.gateway = gateway
        self.version = version
        self.firstSeen = firstSeen
    }
}

/// Which devices a rollout applies to: `hardware=esp32,tag=floor2`. Different keys must all
/// match (AND); a key given twice matches either value (OR): `gateway=gw1,gateway=gw2`.
/// Values compare case-insensitively. The empty selector matches every device.
public struct DeviceSelector: Sendable, Hashable, CustomStringConvertible {
    public static let keys = ["hardware", "variant", "tag", "gateway"]

    /// key → accepted values (lower case).
    public private(set) var terms: [String: Set<String>]

    public init(terms: [String: Set<String>] = [:]) {
        self.terms = terms.mapValues { Set($0.map { $0.lowercased() }) }.filter { !$0.value.isEmpty }
    }

    /// Parses `key=value,key=value` (an empty string selects every device).
    public init(parsing text: String) throws(RolloutError) {
        var terms: [String: Set<String>] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = pieces[0].trimmingSpaces().lowercased()
            guard pieces.count == 2, !pieces[1].trimmingSpaces().isEmpty else {
                throw .invalidSelector(text, reason: "'\(part)' is not key=value")
            }
            guard Self.keys.contains(key) else {
                throw .invalidSelector(text, reason: "unknown key '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
            }
            terms[key, default: []].insert(pieces[1].trimmingSpaces().lowercased())
        }
        self.terms = terms
    }

    /// The selector keys for which `device` reports no value, so it cannot match them
    /// (`tag` and `gateway` always have one: no tags is a value).
    public func unknownKeys(_ device: DeviceFacts) -> [String] {
        terms.keys.sorted().filter { key in
            switch key {
            case "hardware": device.hardware == nil
            case "variant": device.variant == nil
            default: false
            }
        }
    }

    public func matches(_ device: DeviceFacts) -> Bool {
        for (key, values) in terms {
            switch key {
            case "hardware": guard let hardware = device.hardware?.lowercased(), values.contains(hardware) else { return false }
            case "variant": guard let variant = device.variant?.lowercased(), values.contains(variant) else { return false }
            case "tag": guard !values.isDisjoint(with: device.tags.map { $0.lowercased() }) else { return false }
            case "gateway": guard values.contains(device.gateway.lowercased()) else { return false }
            default: return false
            }
        }
        return true
    }

    /// `hardware=esp32,tag=floor2`, keys and values sorted; `all devices` when empty.
    public var description: String {
        let text = terms.keys.sorted().flatMap { key in terms[key]!.sorted().map { "\(key)=\($0)" } }.joined(separator: ",")
        return text.isEmpty ? "all devices" : text
    }

    /// The selector as text that ``init(parsing:)`` reads back (empty for all devices).
    public var text: String { terms.isEmpty ? "" : description }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
