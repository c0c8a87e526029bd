import Foundation
import OTAMeshCommon
import OTAMeshGossip

/// One device as the site view shows it: what a gateway knows of it, compact enough to gossip.
/// Every string a device sent is bounded (``limit(_:_:)``), so a hostile device cannot bloat a
/// record; printing still escapes them (the CLI does).
public struct DeviceSummary: Codable, Sendable, Equatable {
    public var id: String
    public var family: DeviceFamily
    public var hardware: String?
    public var variant: String?
    public var version: String?
    /// Unix seconds (0: never seen, only registered).
    public var lastSeen: Double
    /// What the gateway last answered it, or the last push outcome.
    public var lastAnswer: String?
    /// The admin's tags (comma-separated), so a rollout preview at any gateway can select by tag.
    public var tags: String?
    /// The run of the gateway that wrote it (its start, Unix microseconds; see
    /// ``DeviceSummaries/runKey``); nil from gateways that do not say.
    public var run: UInt64?

    public init(
        id: String, family: DeviceFamily, hardware: String?, variant: String?, version: String?, lastSeen: Double, lastAnswer: String?,
        run: UInt64? = nil
    ) {
        self.run = run
        self.id = id
        self.family = family
        self.hardware = hardware
        self.variant = variant
        self.version = version
        self.lastSeen = lastSeen
        self.lastAnswer = lastAnswer
    }

    /// The summary of a registry record, fields bounded and `lastSeen` rounded down to
    /// ``DeviceSummaries/seenGranularity`` (so a device polling every second does not rewrite
    /// its record every second).
    public init(_ record: DeviceRecord) {
        id = record.id
        family = DeviceFamily(rawValue: Self.limit(record.family.rawValue, 32) ?? "?")
        hardware = Self.limit(record.hardware, 48)
        variant = Self.limit(record.variant, 48)
        version = Self.limit(record.version, 64)
        let seen = record.lastSeen.isFinite ? max(0, record.lastSeen) : 0
        lastSeen = (seen / DeviceSummaries.seenGranularity).rounded(.down) * DeviceSummaries.seenGranularity
        lastAnswer = Self.limit(record.lastAnswer, 120)
        tags = Self.limit(record.tags, 120)
    }

    enum CodingKeys: String, CodingKey {
        case id = "i", family = "f", hardware = "h", variant = "r", version = "v", lastSeen = "s", lastAnswer = "a", run = "e", tags = "t"
    }

    /// At most `count` characters (Unicode scalars), nil for nil or empty.
    static func limit(_ text: String?, _ count: Int) -> String? {
        guard let text, !text.isEmpty else { return nil }
        guard text.unicodeScalars.count > count else { return text }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.prefix(count - 1))
        scalars.append("…")
        return String(scalars)
    }
}

/// How each gateway gossips a summary of its own devices, and how any gateway merges them into
/// the site's device list (`GET /api/v1/devices`, `otamesh devices --site`).
///
/// Records `dv/DEVICE-ID` (owner: the gateway that saw the device), value the compact JSON of a
/// ``DeviceSummary``; an empty value retracts a device (removed from that gateway's registry).
/// A restarted gateway no longer knows which records it wrote before, so it cannot retract a
/// device removed while it was down: instead it numbers its run (``runKey``) and, once it has
/// republished every device it has, announces the run; readers skip that gateway's records of
/// earlier runs.
/// Bounds: ``maxPerGateway`` devices per gateway (the most recently seen), ``maxValue`` bytes per
/// record, ``maxWritesPerTick`` records written per tick, and a record is rewritten only when
/// its summary changes (`lastSeen` counts in steps of ``seenGranularity``). Pure.
public enum DeviceSummaries {
    public static let prefix = "dv/"
    public static let maxPerGateway = 2_000
    public static let maxValue = 1_000
    public static let maxWritesPerTick = 20
    public static let seenGranularity: Double = 300
    /// The record announcing a gateway's current run (decimal microseconds): its `dv/` records of
    /// earlier runs are stale.
    public static let runKey = "dv.run"

    /// The record key of a device, nil when the id does not fit a key (such a device is left out).
    public static func key(_ id: String) -> String? {
        let key = prefix + id
        return id.isEmpty || key.utf8.count > 200 || id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) ? nil : key
    }

    /// The record value: compact JSON within ``maxValue`` bytes. Escaped control characters can
    /// make bounded fields long in JSON, so the less useful fields shrink until it fits; nil if
    /// even the id alone does not.
    public static func encode(_ summary: DeviceSummary) -> [UInt8]? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var candidate = summary
        for step in 0..<4 {
            if let data = try? encoder.encode(candidate), data.count <= maxValue { return Array(data) }
            switch step {
            case 0:
                candidate.lastAnswer = DeviceSummary.limit(candidate.lastAnswer, 24)
                candidate.tags = DeviceSummary.limit(candidate.tags, 24)
            case 1:
                candidate.variant = nil
                candidate.hardware = DeviceSummary.limit(candidate.hardware, 16)
            default:
                candidate.lastAnswer = nil
                candidate.hardware = nil
                candidate.version = DeviceSummary.limit(candidate.version, 16)
                candidate.family = DeviceFamily(rawValue: DeviceSummary.limit(candidate.family.rawValue, 16) ?? "?")
            }
        }
        return nil
    }

    /// A peer's record as a summary: nil for a retraction, a key that is not a device's, an
    /// oversized or unreadable value, or one whose id is not the key's.
    public static func decode(key: String, value: [UInt8]) -> DeviceSummary? {
        guard key.hasPrefix(prefix), !value.isEmpty, value.count <= maxValue,
            let summary = try? JSONDecoder().decode(DeviceSummary.self, from: Data(value)),
            prefix + summary.id == key, summary.lastSeen.isFinite, summary.lastSeen >= 0
        else { return nil }
        // Bounds again: a peer may run other code, or be hostile.
        var bounded = DeviceSummary(
            id: summary.id, family: DeviceFamily(rawValue: DeviceSummary.limit(summary.family.rawValue, 32) ?? "?"),
            hardware: DeviceSummary.limit(summary.hardware, 48), variant: DeviceSummary.limit(summary.variant, 48),
            version: DeviceSummary.limit(summary.version, 64), lastSeen: summary.lastSeen,
            lastAnswer: DeviceSummary.limit(summary.lastAnswer, 120), run: summary.run)
        bounded.tags = DeviceSummary.limit(summary.tags, 120)
        return bounded
    }

    /// What to write so that this gateway's `dv/` records say `devices`: `published` maps keys
    /// to what they hold now. New and changed summaries first (most recently seen first), then
    /// retractions; at most `limit` writes (the rest follow on the next tick).
    public static func writes(
        devices: [DeviceRecord], published: [String: [UInt8]], run: UInt64? = nil,
        limit: Int = maxWritesPerTick
    ) -> [(key: String, value: [UInt8])] {
        let kept = devices.sorted { ($0.lastSeen, $1.id) > ($1.lastSeen, $0.id) }.prefix(maxPerGateway)
        var wanted: [String: [UInt8]] = [:]
        var order: [String] = []
        for device in kept {
            var summary = DeviceSummary(device)
            summary.run = run
            guard let key = key(device.id), let value = encode(summary) else { continue }
            wanted[key] = value
            order.append(key)
        }
        var writes: [(key: String, value: [UInt8])] = []
        for key in order where published[key] != wanted[key] {
            writes.append((key, wanted[key] ?? []))
        }
        for (key, value) in published.sorted(by: { $0.key < $1.key }) where wanted[key] == nil && !value.isEmpty {
            writes.append((key, []))
        }
        return Array(writes.prefix(limit))
    }

    /// The site's devices: this gateway's own (exact, from its registry) and every other
    /// gateway's records. A device more than one gateway knows shows once: the most recent
    /// sighting wins (ties: the local gateway, then the lower name), and `gateways` lists them all.
    public static func merge(gateway: String, local: [DeviceRecord], remote: [(owner: String, key: String, value: [UInt8])]) -> [SiteDevice] {
        let records = remote.map { ReplicatedRecords.Record(key: $0.key, owner: $0.owner, version: 0, value: $0.value) }
        return merge(gateway: gateway, local: local, published: DeviceSummaryChannel.view(of: records))
    }

    /// The same, from the device summary channel's view of the mesh.
    static func merge(gateway: String, local: [DeviceRecord], published: DeviceSummaryChannel.View) -> [SiteDevice] {
        var sightings: [String: [(gateway: String, summary: DeviceSummary)]] = [:]
        for record in local {
            var summary = DeviceSummary(record)
            summary.lastSeen = record.lastSeen.isFinite ? max(0, record.lastSeen) : 0
            sightings[record.id, default: []].append((gateway, summary))
        }
        for (owner, summary) in published.devices where owner != gateway {
            guard (summary.run ?? 0) >= (published.runs[owner] ?? 0) else { continue }
            sightings[summary.id, default: []].append((owner, summary))
        }
        return sightings.keys.sorted().compactMap { id in
            let all = sightings[id] ?? []
            let ordered = all.sorted { a, b in
                if a.summary.lastSeen != b.summary.lastSeen { return a.summary.lastSeen > b.summary.lastSeen }
                if (a.gateway == gateway) != (b.gateway == gateway) { return a.gateway == gateway }
                return a.gateway < b.gateway
            }
            guard let best = ordered.first else { return nil }
            return SiteDevice(summary: best.summary, gateway: best.gateway, gateways: ordered.map(\.gateway))
        }
    }
}

/// One device of the site as `GET /api/v1/devices` answers it.
public struct SiteDevice: Codable, Sendable, Equatable {
    public var id: String
    /// The gateway with the most recent sighting.
    public var gateway: String
    /// Every gateway that knows the device, most recent sighting first.
    public var gateways: [String]
    public var family: DeviceFamily
    public var hardware: String?
    public var variant: String?
    public var version: String?
    public var lastSeen: Double
    public var lastAnswer: String?
    public var tags: String?

    public init(summary: DeviceSummary, gateway: String, gateways: [String]) {
        id = summary.id
        self.gateway = gateway
        self.gateways = gateways
        family = summary.family
        hardware = summary.hardware
        variant = summary.variant
        version = summary.version
        lastSeen = summary.lastSeen
        lastAnswer = summary.lastAnswer
        tags = summary.tags
    }
}

/// `GET /api/v1/devices`: the site's devices as one gateway sees them.
public struct SiteDevices: Codable, Sendable, Equatable {
    /// The gateway that answered.
    public var gateway: String
    /// Whether other gateways' records were merged (false: gossip is off, only this gateway's own).
    public var site: Bool
    public var devices: [SiteDevice]

    public init(gateway: String, site: Bool, devices: [SiteDevice]) {
        self.gateway = gateway
        self.site = site
        self.devices = devices
    }
}
