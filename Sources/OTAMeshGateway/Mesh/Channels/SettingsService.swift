import Logging
import OTAMeshApps
import OTAMeshCommon
import OTAMeshGossip
import ServiceLifecycle

/// Gossips the app settings kept in this gateway's registry (``SettingsChannel``) every two
/// seconds: what changed since it last wrote, and a retraction for a device whose settings are
/// gone. Passwords are not in them (``DeviceSettings/stored``).
struct SettingsService: Service {
    let mesh: Mesh
    let registry: DeviceRegistry
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var tooLarge: Set<String> = []
            while !Task.isCancelled {
                publish(tooLarge: &tooLarge)
                do { try await Task.sleep(for: .seconds(2)) } catch { return }
            }
        }
    }

    /// One tick. `tooLarge`: devices already logged as too large to gossip.
    func publish(tooLarge: inout Set<String>) {
        let written = mesh.written(SettingsChannel.self)
        var writes: [(key: String, value: [UInt8])] = []
        var local: Set<String> = []
        for device in registry.all() {
            guard let stored = device.settings, DeviceSettings(stored: stored) != nil else { continue }
            local.insert(device.id)
            let value = Array(stored.utf8)
            guard value.count <= WireCodec.maxValue else {
                if tooLarge.insert(device.id).inserted {
                    logger.warning(
                        "device settings too large to gossip: kept on this gateway only",
                        metadata: ["device.id": "\(device.id)", "settings.bytes": "\(value.count)", "limit": "\(WireCodec.maxValue)"])
                }
                continue
            }
            if written[device.id] != value { writes.append((SettingsChannel.prefix + device.id, value)) }
        }
        for (id, value) in written where !value.isEmpty && !local.contains(id) { writes.append((SettingsChannel.prefix + id, [])) }
        guard !writes.isEmpty else { return }
        do { try mesh.put(all: Array(writes.prefix(DeviceSummaries.maxWritesPerTick))) } catch {
            logger.error("cannot gossip device settings", metadata: ["error": "\(error)"])
        }
    }
}

extension Mesh {
    /// The newest settings of `device` that another gateway of the site gossips (nil: none, or
    /// this gateway's own are the newest).
    /// A lookup per member (records by owner and key), not a walk of every record: the device
    /// routes ask it on requests.
    func siteSettings(of device: String) -> (owner: String, settings: DeviceSettings)? {
        let key = SettingsChannel.prefix + device
        let found = state.withLockedValue { state -> [ChannelRecord<DeviceSettings?>] in
            let owners = Set(state.node.swim.others.map(\.address.name)).union([me.name])
            return owners.compactMap { owner in
                guard let record = state.node.records.get(key, owner: owner), let value = SettingsChannel.decode(name: device, record.value) else { return nil }
                return ChannelRecord(owner: owner, name: device, version: record.version, value: value)
            }
        }
        guard let newest = SettingsChannel.merge(found)[device], newest.owner != me.name else { return nil }
        return newest
    }
}
