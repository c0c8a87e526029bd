import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
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
            let held = Holdings.view(of: records)
            func images(of owner: String) -> [String] { (held[owner] ?? []).sorted() }
            let members = state.node.swim.others.map { member in
                let info = MemberInfo.decode(member.metadata)
                return MemberView(
                    name: member.address.name, status: member.left ? "left" : Self.statusName(member.status), address: member.address.hostPort,
                    http: info?.httpPort.map { "http://\(member.address.ip.count == 16 ? "[\(member.address.host)]" : member.address.host):\($0)" },
                    version: info?.software, metadataVersion: info?.metadataVersion, incarnation: member.incarnation, since: max(0, now - member.since),
                    images: images(of: member.address.name), keys: info?.keys, traffic: info?.traffic.map(TrafficView.init), upstream: info?.upstream)
            }
            let rotation = KeyRotationChannel.view(of: records).map { "\($0.rotation.fingerprint) \($0.rotation.phase)" }
            return MeshView(
                node: me.name, site: state.keyring.site, address: me.hostPort, images: images(of: me.name), members: members,
                keys: state.keyring.keyring.keys.map(SiteKeyring.fingerprint), rotation: rotation, version: state.info.software,
                metadataVersion: state.info.metadataVersion, traffic: state.info.traffic.map(TrafficView.init))
        }
    }

    /// Announces which verified images this gateway holds (SHA-256 hex), as records.
    public func announceHoldings(_ held: Set<String>) {
        state.withLockedValue { state in
            let current = Holdings.merge(Holdings.records(in: state.node.records.records, owner: me.name))[me.name] ?? []
            for hex in held.subtracting(current).sorted() { _ = try? state.put(Holdings.self, hex, true) }
            for hex in current.subtracting(held).sorted() { _ = try? state.put(Holdings.self, hex, false) }
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
            let at = wallClock.now().seconds
            state.arrivals["\(record.owner) \(record.key)"] = at
            return (RecordView(record, receivedAt: at), state.node.gossipNow())
        }
        send(packets)
        return view
    }

    /// What the mesh's records of `channel` say now (``GossipChannel/merge(_:)``).
    func view<C: GossipChannel>(of channel: C.Type) -> C.View {
        state.withLockedValue { C.view(of: $0.node.records.records) }
    }

    /// This gateway's own records of `channel` as written: name → bytes.
    func written<C: GossipChannel>(_ channel: C.Type) -> [String: [UInt8]] {
        state.withLockedValue { state in
            var own: [String: [UInt8]] = [:]
            for record in state.node.records.records where record.owner == me.name && record.key.hasPrefix(C.prefix) {
                own[String(record.key.dropFirst(C.prefix.count))] = record.value
            }
            return own
        }
    }

    /// Every replicated record this gateway holds, with when it arrived.
    public func records() -> [RecordView] {
        state.withLockedValue { state in
            state.node.records.records.map { RecordView($0, receivedAt: state.arrivals["\($0.owner) \($0.key)"]) }
        }
    }
}
