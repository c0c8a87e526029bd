import Crypto

/// What this gateway advertises on the LAN as `_otamesh._tcp`.
public struct DiscoveryAdvert: Sendable, Equatable {
    /// The unique gateway name; also the DNS-SD instance name (clipped to 63 bytes there, the
    /// full name travels in TXT `id`).
    public var nodeName: String
    /// The site this gateway belongs to. Never advertised: peers see only ``siteHash``.
    public var siteID: String
    /// The discovery protocol version, ``DiscoveryTXT/protocolVersion``.
    public var protocolVersion: Int
    /// The gossip port (also the SRV port).
    public var gossipPort: UInt16
    /// The device HTTP port; peers fetch images from it.
    public var httpPort: UInt16
    /// IPv4/IPv6 literals this node's gossip listens on: what peers should dial.
    public var addresses: [String]

    public init(
        nodeName: String, siteID: String, protocolVersion: Int = DiscoveryTXT.protocolVersion,
        gossipPort: UInt16, httpPort: UInt16, addresses: [String]
    ) {
        self.nodeName = nodeName
        self.siteID = siteID
        self.protocolVersion = protocolVersion
        self.gossipPort = gossipPort
        self.httpPort = httpPort
        self.addresses = addresses
    }

    /// The first 16 hex digits of SHA-256("otamesh-site:" + siteID): enough to tell sites apart
    /// on one LAN without publishing the site's name.
    public var siteHash: String { Self.siteHash(of: siteID) }

    public static func siteHash(of siteID: String) -> String {
        let digest = SHA256.hash(data: Array("otamesh-site:\(siteID)".utf8))
        return digest.prefix(8).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 0x10 ? "0" + hex : hex
        }.joined()
    }

    /// The DNS-SD instance name: the node name, clipped to the 63-byte label limit on a
    /// character boundary.
    public var instanceName: String {
        var name = nodeName
        while name.utf8.count > 63 { name.removeLast() }
        return name
    }

    /// Why this advert cannot be registered (nil when it can): peers would reject it anyway.
    public var problem: String? {
        if !DiscoveryTXT.isValidNodeName(nodeName) { return "node name must be 1…64 bytes of UTF-8 without control characters" }
        if gossipPort == 0 { return "gossip port is 0" }
        if httpPort == 0 { return "HTTP port is 0" }
        if protocolVersion != DiscoveryTXT.protocolVersion { return "protocol version \(protocolVersion) is not \(DiscoveryTXT.protocolVersion)" }
        return nil
    }

    /// Whether this node should use a peer it decoded: only other nodes of the same site.
    public func admit(_ peer: DiscoveredPeer) -> Result<DiscoveredPeer, DiscoveryRejection> {
        if peer.siteHash != siteHash { return .failure(.otherSite(siteHash: peer.siteHash)) }
        if peer.nodeName == nodeName { return .failure(.ownName) }
        return .success(peer)
    }
}

/// A gateway of this site found on the LAN.
public struct DiscoveredPeer: Sendable, Equatable, Hashable, Codable {
    public var nodeName: String
    /// Normalised IP literals to dial (unusable ones dropped), TXT `addr` first.
    public var addresses: [String]
    public var gossipPort: UInt16
    public var httpPort: UInt16
    public var protocolVersion: Int
    public var siteHash: String

    public init(nodeName: String, addresses: [String], gossipPort: UInt16, httpPort: UInt16, protocolVersion: Int, siteHash: String) {
        self.nodeName = nodeName
        self.addresses = addresses
        self.gossipPort = gossipPort
        self.httpPort = httpPort
        self.protocolVersion = protocolVersion
        self.siteHash = siteHash
    }
}
