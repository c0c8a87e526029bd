import OTAMeshGossip
import OTAMeshRollout

/// The rollout records live in the mesh's `ro/` keys; the rollout engine reads and writes them
/// through this store interface.
extension Mesh: RolloutRecordStore {
    public func rolloutEntries() -> (entries: [RolloutRecords.Entry], versions: [String: UInt64]) {
        view(of: RolloutChannel.self)
    }

    /// Writes one rollout record; a key outside the rollout channel is refused.
    public func putRecord(_ key: String, _ value: [UInt8]) throws {
        guard key.hasPrefix(RolloutChannel.prefix) else { throw WireError.invalid("rollout record key \(key) is not under \(RolloutChannel.prefix)") }
        _ = try put(key, value)
    }

    public func aliveMembers() -> Set<String> {
        state.withLockedValue { state in Set([me.name] + state.node.swim.others.filter { $0.status == .alive }.map(\.address.name)) }
    }
}
