import Logging
import OTAMeshGossip
import OTAMeshStore

/// Site key rotation, as the mesh carries it out (``KeyRotation`` decides the phases).
extension Mesh {
    /// Starts rotating the site key (``KeyRotation``): a new key, installed here at once and
    /// spread through the mesh; ``followRotation()`` takes it through its phases.
    public func startRotation(nowMilliseconds: UInt64) throws -> KeyRotation {
        let rotation = try state.withLockedValue { state in
            let latest = KeyRotationChannel.view(of: state.node.records.records)?.rotation
            let rotation = KeyRotation.start(now: nowMilliseconds, key: SiteKeyring.generateKey(), keyring: state.keyring.keyring, latest: latest)
            try state.put(KeyRotationChannel.self, "", rotation)
            return rotation
        }
        logger.notice("site key rotation started", metadata: ["rotation.key": "\(rotation.fingerprint)"])
        followRotation()
        return rotation
    }

    /// Applies the newest rotation's phase to this gateway's keyring (saved to its file), and —
    /// on the gateway that started it — moves it to the next phase once every live member
    /// reports the current one (``KeyRotation/step(latest:keyring:me:others:)`` decides).
    func followRotation() {
        let (changed, saved) = state.withLockedValue { state -> (String?, SiteKeyringFile?) in
            let latest = KeyRotationChannel.view(of: state.node.records.records)
            let others = state.node.swim.others.filter { $0.status == .alive }.map { MemberInfo.decode($0.metadata)?.keys ?? [] }
            let step = KeyRotation.step(latest: latest, keyring: state.keyring.keyring, me: me.name, others: others)
            var changed: String?
            if let ring = step.keyring, let rotation = latest?.rotation {
                state.keyring.keyring = ring
                state.info.keys = ring.keys.map(SiteKeyring.fingerprint)
                state.node.updateMetadata(state.info.encoded())
                changed = "\(rotation.phase)"
            }
            if let next = step.write, let rotation = latest?.rotation {
                _ = try? state.put(KeyRotationChannel.self, "", next)
                logger.notice("site key rotation advanced", metadata: ["rotation.key": "\(rotation.fingerprint)", "rotation.phase": "\(next.phase)"])
            }
            return (changed, changed == nil ? nil : state.keyring)
        }
        guard let changed, let saved, let keyringPath else { return }
        do {
            try saved.save(keyringPath)
            logger.notice(
                "site keyring updated", metadata: ["rotation.phase": "\(changed)", "keyring.keys": "\(saved.keyring.keys.map(SiteKeyring.fingerprint))"])
        } catch {
            logger.error("site keyring not saved; the rotation holds until restart", metadata: ["error": "\(error)"])
        }
    }
}
