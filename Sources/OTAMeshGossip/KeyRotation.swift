/// Rotating the site key on a running mesh, without a restart or a partition. The gateway that
/// starts it owns one replicated record (``recordKey``) and advances it through three phases,
/// each only once every live member reports (in its member metadata) that the previous one
/// took effect everywhere:
///
/// 1. `install` — every gateway adds the new key: it can now open packets sealed with it.
/// 2. `use` — every gateway seals with the new key (all still open the old one).
/// 3. `retire` — every gateway drops the old keys.
///
/// The record travels only inside the encrypted mesh. The newest rotation (highest `id`) wins
/// if two were started. Pure.
public struct KeyRotation: Sendable, Equatable {
    public enum Phase: UInt8, Sendable, Comparable {
        case install = 1, use = 2, retire = 3
        public static func < (lhs: Phase, rhs: Phase) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public static let recordKey = "site/rotation"

    /// Orders rotations: the start time in milliseconds.
    public var id: UInt64
    public var key: [UInt8]
    public var phase: Phase
    /// Fingerprints of the keys to drop in `retire` (the ring as it was when the rotation began).
    public var retire: [String]

    public init(id: UInt64, key: [UInt8], phase: Phase = .install, retire: [String]) {
        self.id = id
        self.key = key
        self.phase = phase
        self.retire = retire
    }

    public var fingerprint: String { SiteKeyring.fingerprint(key) }

    /// `id u64 | phase u8 | key (32) | count u8 | (length u8 | fingerprint)…`
    public func encoded() -> [UInt8] {
        var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: id >> (56 - 8 * UInt64($0))) }
        out.append(phase.rawValue)
        out += key
        out.append(UInt8(min(retire.count, 16)))
        for fingerprint in retire.prefix(16) {
            let bytes = Array(fingerprint.utf8.prefix(64))
            out.append(UInt8(bytes.count))
            out += bytes
        }
        return out
    }

    /// nil for anything malformed (total: any bytes).
    public static func decode(_ bytes: [UInt8]) -> KeyRotation? {
        guard bytes.count >= 8 + 1 + SiteKeyring.keyLength + 1, let phase = Phase(rawValue: bytes[8]) else { return nil }
        let id = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let key = Array(bytes[9..<(9 + SiteKeyring.keyLength)])
        var index = 9 + SiteKeyring.keyLength
        let count = Int(bytes[index])
        index += 1
        var retire: [String] = []
        for _ in 0..<count {
            guard index < bytes.count else { return nil }
            let length = Int(bytes[index])
            index += 1
            guard index + length <= bytes.count, let text = String(validating: bytes[index..<(index + length)], as: UTF8.self) else { return nil }
            retire.append(text)
            index += length
        }
        guard index == bytes.count else { return nil }
        return KeyRotation(id: id, key: key, phase: phase, retire: retire)
    }

    /// The keyring once this rotation's phase took effect on it.
    public func applied(to keyring: SiteKeyring) -> SiteKeyring {
        var ring = keyring
        if !ring.keys.contains(key) { try? ring.install(key) }
        if phase >= .use { try? ring.use(key) }
        if phase == .retire {
            for old in ring.keys where old != key && retire.contains(SiteKeyring.fingerprint(old)) { try? ring.remove(old) }
        }
        return ring
    }

    /// The initiator's next step, given what every live member (this node included) reports:
    /// its key fingerprints, primary first. nil while waiting, or when done.
    public func advanced(members: [[String]]) -> KeyRotation? {
        var next = self
        switch phase {
        case .install:
            guard members.allSatisfy({ $0.contains(fingerprint) }) else { return nil }
            next.phase = .use
        case .use:
            guard members.allSatisfy({ $0.first == fingerprint }) else { return nil }
            next.phase = .retire
        case .retire:
            return nil
        }
        return next
    }

    /// Done everywhere: every member holds only the new key.
    public func isComplete(members: [[String]]) -> Bool {
        phase == .retire && members.allSatisfy { $0.first == fingerprint && !$0.contains { retire.contains($0) } }
    }
}

/// The site's key rotation as a gossip channel: the one record `site/rotation` of the gateway
/// that started it; of several, the newest (highest `id`) counts.
public enum KeyRotationChannel: GossipChannel {
    public static let prefix = KeyRotation.recordKey
    /// A restarted initiator must still know it owns the rotation, to take it to its end.
    public static let durable = true
    public static func encode(_ rotation: KeyRotation) -> [UInt8] { rotation.encoded() }
    public static func decode(name: String, _ bytes: [UInt8]) -> KeyRotation? { name.isEmpty ? KeyRotation.decode(bytes) : nil }

    /// The newest rotation and the gateway that started it (ties: the lower owner name).
    public static func merge(_ records: [ChannelRecord<KeyRotation>]) -> (rotation: KeyRotation, owner: String)? {
        records.max { ($0.value.id, $1.owner) < ($1.value.id, $0.owner) }.map { ($0.value, $0.owner) }
    }
}

extension KeyRotation {
    /// What a gateway does about the site's rotation, once: the keyring to use (nil: keep the
    /// one it has) and, on the gateway that started the rotation, the next phase to write.
    public struct Step: Sendable, Equatable {
        public var keyring: SiteKeyring?
        public var write: KeyRotation?
    }

    /// One step of following `latest` (``KeyRotationChannel``'s view) on gateway `me` holding
    /// `keyring`; `others` are the key fingerprints every other live member reports. Pure.
    public static func step(latest: (rotation: KeyRotation, owner: String)?, keyring: SiteKeyring, me: String, others: [[String]]) -> Step {
        guard let (rotation, owner) = latest else { return Step() }
        let ring = rotation.applied(to: keyring)
        let write = owner == me ? rotation.advanced(members: [ring.keys.map(SiteKeyring.fingerprint)] + others) : nil
        return Step(keyring: ring == keyring ? nil : ring, write: write)
    }

    /// A new rotation started at `now` (milliseconds) to `key`, retiring every key of `keyring`;
    /// numbered after `latest` so it wins over any rotation started before.
    public static func start(now: UInt64, key: [UInt8], keyring: SiteKeyring, latest: KeyRotation?) -> KeyRotation {
        KeyRotation(id: max(now, (latest?.id ?? 0) + 1), key: key, retire: keyring.keys.map(SiteKeyring.fingerprint))
    }
}
