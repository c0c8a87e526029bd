import Foundation
import OTAMeshCommon
import OTAMeshRollout
import OTAMeshStore
import OTAMeshTrust

/// Everything the site dashboard shows, as one gateway sees the site: sent whole as the first
/// event of `GET /api/v1/events` and again whenever it changes (docs/dashboard.md). Strings that
/// devices and peers sent are data here; the page renders them as text.
public struct DashboardSnapshot: Codable, Sendable, Equatable {
    /// The gateway that answered, and the site it belongs to (nil: no site trust file).
    public var gateway: String
    public var site: SiteInfo?
    /// The mesh as this gateway sees it (nil: gossip is off).
    public var mesh: MeshView?
    public var devices: [Device]
    public var images: [Image]
    public var rollouts: [RolloutStatus]
    /// The trusted TUF metadata: each role's version and expiry.
    public var metadata: [Metadata]

    /// One device of the site: the gossiped summary, with what only its own gateway knows.
    public struct Device: Codable, Sendable, Equatable {
        public var id: String
        public var gateway: String
        public var family: String
        public var push: Bool
        public var hardware: String?
        public var variant: String?
        public var version: String?
        /// Seconds since the Unix epoch.
        public var lastSeen: Double
        public var lastAnswer: String?
        public var tags: String?
        /// Known only on the device's own gateway (nil elsewhere).
        public var address: String?
        public var segment: String?
        public var confirmable: Bool?
    }

    /// A trusted target and the gateways that hold its image.
    public struct Image: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var length: Int64
        public var version: String?
        public var hardware: String?
        public var format: String?
        public var holders: [String]
    }

    public struct Metadata: Codable, Sendable, Equatable {
        public var role: String
        public var version: Int64
        /// Seconds since the Unix epoch.
        public var expires: Int64
    }

    /// Builds the snapshot from the agent's parts (pure: every input is a value).
    static func make(
        gateway: String, site: SiteInfo?, mesh: MeshView?, siteDevices: [SiteDevice], local: [DeviceRecord],
        catalog: ServingCatalog, rollouts: [RolloutStatus]
    ) -> DashboardSnapshot {
        let mine = Dictionary(local.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let devices = siteDevices.map { device -> Device in
            let record = device.gateway == gateway ? mine[device.id] : nil
            return Device(
                id: device.id, gateway: device.gateway, family: device.family.rawValue, push: device.family.isPush, hardware: device.hardware,
                variant: device.variant, version: device.version, lastSeen: device.lastSeen, lastAnswer: device.lastAnswer, tags: device.tags,
                address: record?.address, segment: record?.effectiveSegment, confirmable: record.map { !$0.unconfirmable })
        }.sorted { $0.id < $1.id }
        var holders: [String: Set<String>] = [:]
        if let mesh {
            for member in mesh.members { for image in member.images { holders[image, default: []].insert(member.name) } }
            for image in mesh.images { holders[image, default: []].insert(mesh.node) }
        }
        let images = catalog.targets.values.map { target -> Image in
            var held = holders[target.sha256] ?? []
            if catalog.blob(forTarget: target.path) != nil { held.insert(gateway) }
            return Image(
                path: target.path, sha256: target.sha256, length: target.size, version: target.version, hardware: target.hardware,
                format: target.format, holders: held.sorted())
        }.sorted { $0.path < $1.path }
        return DashboardSnapshot(
            gateway: gateway, site: site, mesh: mesh, devices: devices, images: images, rollouts: rollouts,
            metadata: metadata(catalog.metadata))
    }

    /// The trusted roles' versions and expiries, from the catalog's metadata files.
    static func metadata(_ files: [String: [UInt8]]) -> [Metadata] {
        ["root", "timestamp", "snapshot", "targets"].compactMap { role in
            guard let bytes = files["\(role).json"], let envelope = try? Envelope(bytes: bytes, file: "\(role).json", expectedType: role)
            else { return nil }
            return Metadata(role: role, version: envelope.common.version, expires: envelope.common.expiresAt)
        }
    }
}
