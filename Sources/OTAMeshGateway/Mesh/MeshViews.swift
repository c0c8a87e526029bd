import Foundation
import OTAMeshGossip

/// What a gateway tells the mesh about itself: its SWIM member metadata (compact JSON, far
/// under the 1,200-byte limit). The images it holds travel as replicated records instead
/// (`held/<sha256>`), so their number is not bounded by a packet.
public struct MemberInfo: Codable, Sendable, Equatable {
    /// Device HTTP port: peers fetch images and TUF metadata from it.
    public var httpPort: Int?
    /// otamesh version.
    public var software: String
    /// Version of the trusted timestamp.json (0 = none): who has newer signed metadata.
    public var metadataVersion: Int
    /// Fingerprints of the site keys this gateway holds, primary first (key rotation).
    public var keys: [String]
    /// Image bytes it moved, counted across restarts (nil from gateways before this field).
    public var traffic: Traffic?
    /// It has an upstream, so it may fetch new images for the site (``UpstreamFetchPlan``).
    public var upstream: Bool?

    /// Image bytes sent to devices, fetched from peers, fetched from upstream.
    public struct Traffic: Codable, Sendable, Equatable {
        public var servedToDevices: Int64
        public var fromPeers: Int64
        public var fromUpstream: Int64

        public init(servedToDevices: Int64, fromPeers: Int64, fromUpstream: Int64) {
            self.servedToDevices = servedToDevices
            self.fromPeers = fromPeers
            self.fromUpstream = fromUpstream
        }

        enum CodingKeys: String, CodingKey {
            case servedToDevices = "d", fromPeers = "p", fromUpstream = "u"
        }
    }

    public init(httpPort: Int?, software: String, metadataVersion: Int, keys: [String], traffic: Traffic? = nil, upstream: Bool? = nil) {
        self.upstream = upstream
        self.httpPort = httpPort
        self.software = software
        self.metadataVersion = metadataVersion
        self.keys = keys
        self.traffic = traffic
    }

    enum CodingKeys: String, CodingKey {
        case httpPort = "hp", software = "sw", metadataVersion = "tuf", keys = "k", traffic = "tr", upstream = "up"
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// nil for metadata this version cannot read (another implementation, or garbage).
    public static func decode(_ bytes: [UInt8]) -> MemberInfo? {
        try? JSONDecoder().decode(MemberInfo.self, from: Data(bytes))
    }
}

/// One member as `GET /api/v1/members` and `otamesh members` show it.
public struct MemberView: Codable, Sendable, Equatable {
    public var name: String
    /// alive, suspect or failed.
    public var status: String
    /// Gossip address, HOST:PORT.
    public var address: String
    /// Where the member serves devices and peers, when it says.
    public var http: String?
    public var version: String?
    /// Version of the signed timestamp it trusts.
    public var metadataVersion: Int?
    public var incarnation: UInt64
    /// Seconds since the status last changed.
    public var since: Double
    /// SHA-256 (hex) of every verified image it holds.
    public var images: [String]
    /// Fingerprints of the site keys it holds, primary first.
    public var keys: [String]?
    /// Image bytes it moved, as it last announced them.
    public var traffic: TrafficView?
    /// It has an upstream (it may fetch new images for the site).
    public var upstream: Bool?
}

/// Image bytes a gateway moved (counted across restarts), as the API, the dashboard and `DATA/traffic.json` show them.
public struct TrafficView: Codable, Sendable, Equatable {
    public var servedToDevices: Int64
    public var fromPeers: Int64
    public var fromUpstream: Int64

    public init(_ traffic: MemberInfo.Traffic) {
        servedToDevices = traffic.servedToDevices
        fromPeers = traffic.fromPeers
        fromUpstream = traffic.fromUpstream
    }
}

/// The mesh as one gateway sees it.
public struct MeshView: Codable, Sendable, Equatable {
    public var node: String
    public var site: String
    public var address: String
    public var images: [String]
    public var members: [MemberView]
    /// Fingerprints of the site keys held, primary first.
    public var keys: [String]
    /// The latest site key rotation: its new key's fingerprint and phase (install, use, retire).
    public var rotation: String?
    /// This gateway's own software, trusted metadata version and image bytes moved.
    public var version: String?
    public var metadataVersion: Int?
    public var traffic: TrafficView?
}

extension NodeAddress {
    /// `10.0.0.2:7946` / `[fd00::2]:7946`.
    var hostPort: String {
        let text = description
        return String(text[text.index(after: text.lastIndex(of: "@")!)...])
    }

    /// The IP alone, as text.
    var host: String {
        let hostPort = self.hostPort
        let host = hostPort[..<hostPort.lastIndex(of: ":")!]
        return host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : String(host)
    }
}

/// A replicated record as `GET /api/v1/records` shows it.
public struct RecordView: Codable, Sendable, Equatable {
    public var key: String
    public var owner: String
    public var version: UInt64
    /// The value as UTF-8 text when it is printable, else base64 (`valueBase64`).
    public var value: String?
    public var valueBase64: String?
    /// When this version first reached this gateway (Unix seconds), if it did while running.
    public var receivedAt: Double?

    init(_ record: ReplicatedRecords.Record, receivedAt: Double?) {
        key = record.key
        owner = record.owner
        version = record.version
        if let text = String(validating: record.value, as: UTF8.self), !text.unicodeScalars.contains(where: { $0.value < 0x20 }) {
            value = text
        } else {
            valueBase64 = Data(record.value).base64EncodedString()
        }
        self.receivedAt = receivedAt
    }
}

/// This build's version, as gateways tell each other.
public enum OTAMeshVersion {
    public static let current = "0.5.0-dev"
}
