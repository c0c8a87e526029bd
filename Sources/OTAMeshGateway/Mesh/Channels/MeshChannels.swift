import OTAMeshApps
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshRollout

/// The applications a gateway's mesh carries, each as its own channel of the replicated records
/// (``GossipChannel``): holdings, rollouts, device summaries and the site key rotation.
enum MeshChannels {
    static let all: GossipChannels = {
        do {
            return try GossipChannels([Holdings.self, RolloutChannel.self, DeviceSummaryChannel.self, KeyRotationChannel.self, SettingsChannel.self])
        } catch {
            fatalError("\(error)")  // a programming error: the prefixes are constants
        }
    }()
}

/// `held/SHA256`: whether a gateway holds a verified image (1) or dropped it (0); peers fetch
/// what they lack from the holders. Rebuilt from the store at every start, so not journalled.
enum Holdings: GossipChannel {
    static let prefix = "held/"
    static let durable = false
    static func encode(_ held: Bool) -> [UInt8] { [held ? 1 : 0] }

    /// A lower-case SHA-256 hex name and a value of 0 or 1.
    static func decode(name: String, _ bytes: [UInt8]) -> Bool? {
        guard name.utf8.count == 64, name.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return bytes == [1] ? true : bytes == [0] ? false : nil
    }

    /// Owner → the images it holds.
    static func merge(_ records: [ChannelRecord<Bool>]) -> [String: Set<String>] {
        var held: [String: Set<String>] = [:]
        for record in records where record.value { held[record.owner, default: []].insert(record.name) }
        return held
    }
}

/// `ro/…`: the rollouts' signed commands, marks and per-device outcomes (``RolloutRecords``
/// reads them). Journalled: a restarted gateway must not forget its own halt or approval.
enum RolloutChannel: GossipChannel {
    static let prefix = RolloutRecords.prefix
    static let durable = true
    static func encode(_ value: [UInt8]) -> [UInt8] { value }
    /// Raw: ``RolloutRecords/decode(_:versions:)`` checks every record against the others.
    static func decode(name: String, _ bytes: [UInt8]) -> [UInt8]? { bytes }

    /// The records as ``RolloutRecords`` takes them, and each one's version by "owner key".
    static func merge(_ records: [ChannelRecord<[UInt8]>]) -> (entries: [RolloutRecords.Entry], versions: [String: UInt64]) {
        var entries: [RolloutRecords.Entry] = []
        var versions: [String: UInt64] = [:]
        for record in records {
            let key = prefix + record.name
            entries.append(RolloutRecords.Entry(key: key, owner: record.owner, value: record.value))
            versions["\(record.owner) \(key)"] = record.version
        }
        return (entries, versions)
    }
}

/// `dv/DEVICE-ID` and `dv.run`: each gateway's summary of its devices, and the run that
/// published them (``DeviceSummaries``). Republished at every start, so not journalled.
enum DeviceSummaryChannel: GossipChannel {
    enum Value: Sendable, Equatable {
        /// `dv/ID`: a device's summary.
        case device(DeviceSummary)
        /// `dv/ID` with an empty value: the gateway no longer has the device.
        case retracted(String)
        /// `dv.run`: the gateway's current run; its records of earlier runs are stale.
        case run(UInt64)
    }

    /// What the site's devices are merged from (``DeviceSummaries/merge(gateway:local:remote:)``).
    struct View: Sendable, Equatable {
        var devices: [(owner: String, summary: DeviceSummary)] = []
        var runs: [String: UInt64] = [:]

        static func == (a: View, b: View) -> Bool {
            a.runs == b.runs && a.devices.map(\.owner) == b.devices.map(\.owner) && a.devices.map(\.summary) == b.devices.map(\.summary)
        }
    }

    static let prefix = "dv"
    static let durable = false

    static func encode(_ value: Value) -> [UInt8] {
        switch value {
        case .device(let summary): DeviceSummaries.encode(summary) ?? []
        case .retracted: []
        case .run(let run): Array(String(run).utf8)
        }
    }

    static func decode(name: String, _ bytes: [UInt8]) -> Value? {
        if prefix + name == DeviceSummaries.runKey {
            return bytes.count <= 20 ? UInt64(String(decoding: bytes, as: UTF8.self)).map(Value.run) : nil
        }
        guard name.hasPrefix("/") else { return nil }
        if bytes.isEmpty { return .retracted(String(name.dropFirst())) }
        return DeviceSummaries.decode(key: prefix + name, value: bytes).map(Value.device)
    }

    static func merge(_ records: [ChannelRecord<Value>]) -> View {
        var view = View()
        for record in records {
            switch record.value {
            case .device(let summary): view.devices.append((record.owner, summary))
            case .run(let run): view.runs[record.owner] = run
            case .retracted: break
            }
        }
        return view
    }
}

/// `cfg/DEVICE-ID`: a device's app settings as the gateway where an admin set them keeps them
/// (``DeviceSettings/stored``: app version, values that are not secret, the names of the
/// password properties set, the address, when) — never a password. Any gateway of the site can
/// then build the device's configuration image when it moves; of several gateways' settings for
/// one device the newest count. Republished from the registry at start, so not journalled; an
/// empty value retracts them. Settings over ``WireCodec/maxValue`` bytes stay local.
enum SettingsChannel: GossipChannel {
    static let prefix = "cfg/"
    static let durable = false
    static func encode(_ value: DeviceSettings?) -> [UInt8] { value.map { Array($0.stored.utf8) } ?? [] }

    static func decode(name: String, _ bytes: [UInt8]) -> DeviceSettings?? {
        guard !name.isEmpty, name.utf8.count <= 128 else { return nil }
        if bytes.isEmpty { return .some(nil) }
        guard let settings = DeviceSettings(stored: String(decoding: bytes, as: UTF8.self)) else { return nil }
        return .some(settings)
    }

    /// Device id → the newest settings and the gateway that wrote them.
    static func merge(_ records: [ChannelRecord<DeviceSettings?>]) -> [String: (owner: String, settings: DeviceSettings)] {
        var newest: [String: (owner: String, settings: DeviceSettings)] = [:]
        for record in records {
            guard let settings = record.value else { continue }
            if let known = newest[record.name], !settings.isNewer(than: known.settings) && !(settings.at == known.settings.at && record.owner > known.owner) {
                continue
            }
            newest[record.name] = (record.owner, settings)
        }
        return newest
    }
}
