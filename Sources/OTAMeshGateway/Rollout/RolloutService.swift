import Logging
import OTAMeshGossip
import OTAMeshRollout
import ServiceLifecycle

extension Mesh: RolloutRecordStore {
    public func rolloutEntries() -> (entries: [RolloutRecords.Entry], versions: [String: UInt64]) {
        state.withLockedValue { state in
            var entries: [RolloutRecords.Entry] = []
            var versions: [String: UInt64] = [:]
            for record in state.node.records.records where record.key.hasPrefix(RolloutRecords.prefix) {
                entries.append(RolloutRecords.Entry(key: record.key, owner: record.owner, value: record.value))
                versions["\(record.owner) \(record.key)"] = record.version
            }
            return (entries, versions)
        }
    }

    public func putRecord(_ key: String, _ value: [UInt8]) throws {
        _ = try put(key, value)
    }

    public func aliveMembers() -> Set<String> {
        state.withLockedValue { state in Set([me.name] + state.node.swim.others.filter { $0.status == .alive }.map(\.address.name)) }
    }
}

/// Runs the rollout engine's upkeep once a second: census, stage advances, halts, timeouts.
struct RolloutService: Service {
    let engine: RolloutEngine
    let registry: DeviceRegistry
    let gateway: String
    let metrics = RolloutMetrics()

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let records = registry.all()
                engine.upkeep(devices: records.map { DeviceFacts($0, gateway: gateway) })
                metrics.update(statuses: engine.statuses(), devices: records)
                do { try await Task.sleep(for: .seconds(1)) } catch { break }
            }
        }
    }
}

extension DeviceFacts {
    /// What rollouts know of a registry device served by `gateway`.
    init(_ record: DeviceRecord, gateway: String) {
        self.init(
            id: record.id, hardware: record.hardware, variant: record.variant, tags: Set(record.tagList), gateway: gateway,
            version: record.version, firstSeen: Int64(record.firstSeen * 1000))
    }
}
