import Logging
import OTAMeshGossip
import OTAMeshStore

/// Site key rotation, as the mesh carries it out (``KeyRotation`` decides the phases).
extension Mesh {
    static func latestRotation(_ records: [ReplicatedRecords.Record]) -> KeyRotation? {
        records.filter { $0.key == KeyRotation.recordKey }.compactMap { KeyRotation.decode($0.value) }.max { $0.id < $1.id }
    }

    /// Starts rotating the site key (``KeyRotation``): a new key, installed here at once and
    /// spread through the mesh; ``followRotation()`` takes it through its phases.
    public func startRotation(nowMilliseconds: UInt64) throws -> KeyRotation {
        let rotation = try state.withLockedValue { state in
            let current = state.keyring.keyring.keys.map(SiteKeyring.fingerprint)
            let latest = Self.latestRotation(state.node.records.records).map(\.id) ?? 0
            let rotation = KeyRotation(id: max(nowMilliseconds, latest + 1), key: SiteKeyring.generateKey(), retire: current)
            try state.put(KeyRotation.recordKey, rotation.encoded())
            return rotation
        }
        logger.notice("site key rotation started", metadata: ["key": "\(rotation.fingerprint)"])
        followRotation()
        return rotation
    }

    /// Applies the newest rotation's phase to this gateway's keyring (saved to its file), and —
    /// on the gateway that started it — moves it to the next phase once every live member
    /// reports the current one.
    func followRotation() {
        let (changed, saved) = state.withLockedValue { state -> (String?, SiteKeyringFile?) in
            let records = state.node.records.records
            guard let rotation = Self.latestRotation(records) else { return (nil, nil) }
            let ring = rotation.applied(to: state.keyring.keyring)
            var changed: String?
            if ring != state.keyring.keyring {
                state.keyring.keyring = ring
                state.info.keys = ring.keys.map(SiteKeyring.fingerprint)
                state.node.updateMetadata(state.info.encoded())
                changed = "\(rotation.phase)"
            }
            let owner = records.first { $0.key == KeyRotation.recordKey && KeyRotation.decode($0.value) == rotation }?.owner
            if owner == me.name {
                let reports =
                    [state.info.keys]
                    + state.node.swim.others.filter { $0.status == .alive }
                    .map { MemberInfo.decode($0.metadata)?.keys ?? [] }
                if let next = rotation.advanced(members: reports) {
                    _ = try? state.put(KeyRotation.recordKey, next.encoded())
                    logger.notice("site key rotation advanced", metadata: ["key": "\(rotation.fingerprint)", "phase": "\(next.phase)"])
                }
            }
            return (changed, changed == nil ? nil : state.keyring)
        }
        guard let changed, let saved, let keyringPath else { return }
        do {
            try saved.save(keyringPath)
            logger.notice("site keyring updated", metadata: ["phase": "\(changed)", "keys": "\(saved.keyring.keys.map(SiteKeyring.fingerprint))"])
        } catch {
            logger.error("site keyring not saved; the rotation holds until restart", metadata: ["error": "\(error)"])
        }
    }
}
