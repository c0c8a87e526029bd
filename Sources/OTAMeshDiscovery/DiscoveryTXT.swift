/// The `_otamesh._tcp` TXT record (RFC 6763 §6): length-prefixed `key=value` strings of at
/// most 255 bytes; keys are case-insensitive and the first occurrence of a key wins.
///
/// | key | value |
/// |---|---|
/// | `id` | node name (1…64 bytes of UTF-8) |
/// | `v` | discovery protocol version, `1` |
/// | `gp` | gossip port (the SRV port is the fallback) |
/// | `hp` | device HTTP port |
/// | `site` | ``DiscoveryAdvert/siteHash``, 16 lowercase hex digits |
/// | `addr` | comma-separated IP literals to dial (Avahi's dns_sd layer cannot look addresses up) |
///
/// Everything here is pure and total: any bytes decode to a dictionary, and any dictionary to
/// a peer or one ``DiscoveryRejection``.
public enum DiscoveryTXT {
    public static let protocolVersion = 1

    /// One string's limit (its length byte).
    static let maxItem = 255

    public static func encode(_ advert: DiscoveryAdvert) -> [UInt8] {
        var record: [UInt8] = []
        func item(_ key: String, _ value: String) {
            let bytes = Array("\(key)=\(value)".utf8)
            guard bytes.count <= maxItem else { return }  // only an over-long id; `problem` reports it
            record.append(UInt8(bytes.count))
            record += bytes
        }
        item("id", advert.nodeName)
        item("v", String(advert.protocolVersion))
        item("site", advert.siteHash)
        item("gp", String(advert.gossipPort))
        item("hp", String(advert.httpPort))
        // Whole addresses only, as many as fit one string (≥ 16 IPv4 or 6 IPv6).
        var addresses = ""
        for literal in advert.addresses.compactMap(IPLiteral.dialable) {
            let next = addresses.isEmpty ? literal : addresses + "," + literal
            if "addr=".utf8.count + next.utf8.count > maxItem { break }
            addresses = next
        }
        if !addresses.isEmpty { item("addr", addresses) }
        return record
    }

    /// A TXT record of `key=value` strings (sorted by key, so it is stable); pairs longer than
    /// one string allows are left out.
    public static func encode(pairs: [String: String]) -> [UInt8] {
        var record: [UInt8] = []
        for (key, value) in pairs.sorted(by: { $0.key < $1.key }) {
            let bytes = Array("\(key)=\(value)".utf8)
            guard !key.isEmpty, bytes.count <= maxItem else { continue }
            record.append(UInt8(bytes.count))
            record += bytes
        }
        return record.isEmpty ? [0] : record
    }

    /// Keys (lowercased) to values. Zero-length strings, strings with an empty or non-printable
    /// key, and values that are not UTF-8 are skipped; a key without `=` maps to "" (RFC 6763
    /// §6.4's boolean attribute); a truncated last string ends decoding.
    public static func decode(_ bytes: [UInt8]) -> [String: String] {
        var pairs: [String: String] = [:]
        var seen: Set<String> = []
        var offset = 0
        while offset < bytes.count {
            let length = Int(bytes[offset])
            offset += 1
            guard length <= bytes.count - offset else { break }
            let item = bytes[offset..<offset + length]
            offset += length
            let equals = item.firstIndex(of: UInt8(ascii: "="))
            let keyBytes = item[item.startIndex..<(equals ?? item.endIndex)]
            guard !keyBytes.isEmpty, keyBytes.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { continue }
            let key = String(decoding: keyBytes, as: UTF8.self).lowercased()
            guard seen.insert(key).inserted else { continue }
            let valueBytes = equals.map { item[($0 + 1)...] } ?? []
            if let value = String(validating: valueBytes, as: UTF8.self) { pairs[key] = value }
        }
        return pairs
    }

    /// The peer a resolved instance describes. `resolvedPort` is the SRV port (used when `gp`
    /// is absent); `hostAddresses` are addresses learned another way (none with Avahi's compat
    /// layer), dialled after the TXT ones. The node name is `id`, else the instance name.
    public static func peer(
        instance: String, txt: [UInt8], resolvedPort: UInt16, hostAddresses: [String]
    )
        -> Result<DiscoveredPeer, DiscoveryRejection>
    {
        let pairs = decode(txt)
        guard let versionText = pairs["v"] else { return .failure(.missingKey("v")) }
        guard let version = decimal(versionText, maxDigits: 6) else { return .failure(.invalidValue(key: "v", value: versionText)) }
        guard version == protocolVersion else { return .failure(.unsupportedVersion(version)) }

        guard let site = pairs["site"] else { return .failure(.missingKey("site")) }
        guard site.utf8.count == 16, site.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            return .failure(.invalidValue(key: "site", value: site))
        }

        let name = pairs["id"] ?? instance
        guard isValidNodeName(name) else { return .failure(.invalidValue(key: "id", value: name)) }

        let gossipPort: UInt16
        if let text = pairs["gp"] {
            guard let port = self.port(text) else { return .failure(.invalidValue(key: "gp", value: text)) }
            gossipPort = port
        } else {
            guard resolvedPort != 0 else { return .failure(.missingKey("gp")) }
            gossipPort = resolvedPort
        }
        guard let httpText = pairs["hp"] else { return .failure(.missingKey("hp")) }
        guard let httpPort = port(httpText) else { return .failure(.invalidValue(key: "hp", value: httpText)) }

        var addresses: [String] = []
        let advertised = pairs["addr"].map { $0.split(separator: ",").map { $0.trimmingSpaces } } ?? []
        for candidate in advertised + hostAddresses.map({ $0[...] }) {
            if let literal = IPLiteral.dialable(candidate), !addresses.contains(literal) { addresses.append(literal) }
        }
        guard !addresses.isEmpty else { return .failure(.noUsableAddress(advertised: pairs["addr"] ?? "")) }

        return .success(
            DiscoveredPeer(
                nodeName: name, addresses: addresses, gossipPort: gossipPort, httpPort: httpPort,
                protocolVersion: version, siteHash: site))
    }

    /// 1…64 bytes of UTF-8 (the gossip wire's limit) without control characters.
    public static func isValidNodeName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && !name.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    private static func port(_ text: String) -> UInt16? {
        decimal(text, maxDigits: 5).flatMap { (1...65_535).contains($0) ? UInt16($0) : nil }
    }

    /// Plain ASCII digits only: no sign, spaces or other numerals.
    private static func decimal(_ text: String, maxDigits: Int) -> Int? {
        guard (1...maxDigits).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(text)
    }
}

/// Why a discovered instance is not used. Logged at debug level: another site's gateways and
/// broken adverts are normal on a shared LAN.
public enum DiscoveryRejection: Error, Sendable, Equatable, CustomStringConvertible {
    case missingKey(String)
    case invalidValue(key: String, value: String)
    case unsupportedVersion(Int)
    /// No `addr` entry (nor host address) is a dialable IP literal.
    case noUsableAddress(advertised: String)
    /// A gateway of another site.
    case otherSite(siteHash: String)
    /// The advert carries this node's own name: this node's advert (or a misconfigured twin).
    case ownName

    public var description: String {
        switch self {
        case .missingKey(let key): "TXT key '\(key)' is missing"
        case let .invalidValue(key, value): "TXT key '\(key)' has an invalid value \(Self.quoted(value))"
        case .unsupportedVersion(let version): "protocol version \(version) is not spoken here (this node speaks \(DiscoveryTXT.protocolVersion))"
        case .noUsableAddress(let advertised): "no dialable address in addr=\(Self.quoted(advertised))"
        case .otherSite(let hash): "another site (site hash \(Self.quoted(hash)))"
        case .ownName: "this node's own name"
        }
    }

    /// A short label for metrics and tests.
    public var label: String {
        switch self {
        case .missingKey: "missing_key"
        case .invalidValue: "invalid_value"
        case .unsupportedVersion: "unsupported_version"
        case .noUsableAddress: "no_usable_address"
        case .otherSite: "other_site"
        case .ownName: "own_name"
        }
    }

    /// Network text in a log line: clipped, quoted, control characters escaped.
    private static func quoted(_ text: String) -> String {
        let clipped = text.count > 64 ? String(text.prefix(64)) + "…" : text
        return String(reflecting: clipped)
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
