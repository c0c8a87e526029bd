import OTAMeshGossip
import OTAMeshRollout

/// The rollout records live in the mesh's `ro/` keys; the rollout engine reads and writes them
/// through this store interface.
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
