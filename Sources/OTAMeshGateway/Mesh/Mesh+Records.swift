import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshGossip
import OTAMeshStore

/// What the rest of the agent asks of the mesh and writes into it: the view, holdings, member info, records.
extension Mesh {
    // MARK: Queries and updates

    /// This gateway's view of the mesh.
    public func view() -> MeshView {
        state.withLockedValue { state in
            let now = self.now
            let records = state.node.records.records
            func images(of owner: String) -> [String] {
                records.filter { $0.owner == owner && $0.key.hasPrefix("held/") && $0.value == [1] }.map { String($0.key.dropFirst(5)) }.sorted()
            }
            let members = state.node.swim.others.map { member in
                let info = MemberInfo.decode(member.metadata)
                return MemberView(
                    name: member.address.name, status: member.left ? "left" : Self.statusName(member.status), address: member.address.hostPort,
                    http: info?.httpPort.map { "http://\(member.address.ip.count == 16 ? "[\(member.address.host)]" : member.address.host):\($0)" },
                    version: info?.software, metadataVersion: info?.metadataVersion, incarnation: member.incarnation, since: max(0, now - member.since),
                    images: images(of: member.address.name), keys: info?.keys)
            }
            let rotation = Self.latestRotation(records).map { "\($0.fingerprint) \($0.phase)" }
            return MeshView(
                node: me.name, site: state.keyring.site, address: me.hostPort, images: images(of: me.name), members: members,
                keys: state.keyring.keyring.keys.map(SiteKeyring.fingerprint), rotation: rotation)
        }
    }

    /// Announces which verified images this gateway holds (SHA-256 hex), as records.
    public func announceHoldings(_ held: Set<String>) {
        state.withLockedValue { state in
            let owner = me.name
            let current = Set(
                state.node.records.records.filter { $0.owner == owner && $0.key.hasPrefix("held/") && $0.value == [1] }
                    .map { String($0.key.dropFirst(5)) })
            for hex in held.subtracting(current).sorted() { _ = try? state.put("held/\(hex)", [1]) }
            for hex in current.subtracting(held).sorted() { _ = try? state.put("held/\(hex)", [0]) }
        }
    }

    /// Changes what this gateway says about itself (announced with a new incarnation).
    public func updateInfo(_ change: (inout MemberInfo) -> Void) {
        state.withLockedValue { state in
            var info = state.info
            change(&info)
            info.keys = state.keyring.keyring.keys.map(SiteKeyring.fingerprint)
            guard info != state.info else { return }
            state.info = info
            state.node.updateMetadata(info.encoded())
        }
    }

    /// Writes one of this gateway's records (spread to every member).
    public func put(_ key: String, _ value: [UInt8]) throws -> RecordView {
        let (view, packets) = try state.withLockedValue { state in
            let record = try state.put(key, value)
            let at = BlobStore.wallClock()
            state.arrivals["\(record.owner) \(record.key)"] = at
            return (RecordView(record, receivedAt: at), state.node.gossipNow())
        }
        send(packets)
        return view
    }

    /// Every replicated record this gateway holds, with when it arrived.
    public func records() -> [RecordView] {
        state.withLockedValue { state in
            state.node.records.records.map { RecordView($0, receivedAt: state.arrivals["\($0.owner) \($0.key)"]) }
        }
    }
}
