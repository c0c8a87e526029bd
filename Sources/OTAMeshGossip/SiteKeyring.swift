import Crypto

/// Why a gossip packet was dropped before it reached the protocol (each reason is counted).
public enum PacketRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// Shorter than version + nonce + tag.
    case tooShort(length: Int)
    /// A wire version this node does not speak.
    case unknownVersion(UInt8)
    /// No key of the keyring authenticates it: another site, a stale key, or tampering.
    case unauthenticated

    public var description: String {
        switch self {
        case .tooShort(let length): "packet of \(length) bytes is shorter than the \(SiteKeyring.overhead)-byte envelope"
        case .unknownVersion(let version): "wire version \(version) is not spoken here (this node speaks \(SiteKeyring.wireVersion))"
        case .unauthenticated: "no site key authenticates the packet"
        }
    }

    /// A short label for metrics (`otamesh_gossip_dropped_total{reason=…}`).
    public var label: String {
        switch self {
        case .tooShort: "too_short"
        case .unknownVersion: "unknown_version"
        case .unauthenticated: "unauthenticated"
        }
    }
}

/// A keyring that cannot be built or changed as asked.
public enum KeyringError: Error, Sendable, Equatable, CustomStringConvertible {
    case badKeyLength(Int)
    case empty
    case removingPrimary
    case unknownKey

    public var description: String {
        switch self {
        case .badKeyLength(let length): "site keys are 32 bytes (AES-256), got \(length)"
        case .empty: "a keyring needs at least one key"
        case .removingPrimary: "the primary key cannot be removed; make another key primary first"
        case .unknownKey: "the key is not in the keyring"
        }
    }
}

/// The site keyring: every gossip packet and stream is sealed with AES-256-GCM under the
/// primary key and a fresh random nonce; a received packet is opened with any key of the ring,
/// so keys rotate without a restart or a partition (install the new key everywhere, make it
/// primary, then remove the old one). Pure apart from the nonce's randomness, which callers may
/// inject.
///
/// Envelope (wire version 1): `version u8 | nonce 12 B | ciphertext | tag 16 B`; the version
/// byte is authenticated as associated data, so it cannot be rewritten undetected.
public struct SiteKeyring: Sendable, Equatable {
    public static let wireVersion: UInt8 = 1
    static let nonceLength = 12
    static let tagLength = 16
    /// AES-256 key bytes.
    public static let keyLength = 32
    /// Bytes the envelope adds to a payload.
    public static let overhead = 1 + nonceLength + tagLength

    /// Raw 32-byte keys; the first is the primary (the only one that seals).
    public private(set) var keys: [[UInt8]]

    public init(primary: [UInt8], others: [[UInt8]] = []) throws(KeyringError) {
        for key in [primary] + others where key.count != Self.keyLength { throw .badKeyLength(key.count) }
        keys = [primary] + others.filter { $0 != primary }
    }

    public var primary: [UInt8] { keys[0] }

    /// A short fingerprint of a key (first 8 hex digits of its SHA-256), safe to show and gossip.
    public static func fingerprint(_ key: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(SHA256.hash(data: key).prefix(4).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    /// A new random key.
    public static func generateKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// Adds a key for receiving (no-op if present).
    public mutating func install(_ key: [UInt8]) throws(KeyringError) {
        guard key.count == 32 else { throw .badKeyLength(key.count) }
        if !keys.contains(key) { keys.append(key) }
    }

    /// Makes an installed key the one that seals.
    public mutating func use(_ key: [UInt8]) throws(KeyringError) {
        guard let index = keys.firstIndex(of: key) else { throw .unknownKey }
        keys.swapAt(0, index)
    }

    /// Removes a key that no longer opens anything.
    public mutating func remove(_ key: [UInt8]) throws(KeyringError) {
        guard let index = keys.firstIndex(of: key) else { throw .unknownKey }
        guard index != 0 else { throw .removingPrimary }
        keys.remove(at: index)
    }

    /// Seals a payload under the primary key.
    public func seal(_ payload: [UInt8], nonce: [UInt8]? = nil) -> [UInt8] {
        let header = [Self.wireVersion]
        let gcmNonce = nonce.flatMap { try? AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        // Sealing cannot fail for a 32-byte key and a 12-byte nonce.
        let box = try! AES.GCM.seal(payload, using: SymmetricKey(data: primary), nonce: gcmNonce, authenticating: header)
        return header + Array(gcmNonce) + Array(box.ciphertext) + Array(box.tag)
    }

    /// Opens a packet with any key of the ring. Total: any bytes give a payload or a rejection.
    public func open(_ packet: [UInt8]) -> Result<[UInt8], PacketRejection> {
        guard packet.count >= Self.overhead else { return .failure(.tooShort(length: packet.count)) }
        guard packet[0] == Self.wireVersion else { return .failure(.unknownVersion(packet[0])) }
        let nonceEnd = 1 + Self.nonceLength
        let tagStart = packet.count - Self.tagLength
        guard let nonce = try? AES.GCM.Nonce(data: packet[1..<nonceEnd]),
            let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: packet[nonceEnd..<tagStart], tag: packet[tagStart...])
        else { return .failure(.unauthenticated) }
        for key in keys {
            if let payload = try? AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: packet[0..<1]) {
                return .success(Array(payload))
            }
        }
        return .failure(.unauthenticated)
    }
}
