/// How many connections one listener holds, and which to let go when it is full: the pure core of
/// the connection caps (``ConnectionGate`` is its NIO shell).
///
/// A LAN neighbour can open connections and send nothing (or one byte every few seconds) until
/// the gateway runs out of file descriptors and stops serving everyone. A budget caps the
/// connections of a listener in total and per client address; a new connection over a cap sheds
/// the oldest *idle* connection (no response in flight) — of its own address when that address
/// is at its cap, else of the address holding the most connections — so a flood of idle sockets
/// can never keep a device from being served, and a download in progress is never cut. Only
/// when every connection counted against the cap is busy is the new one refused.
public struct ConnectionBudget<Key: Hashable & Sendable>: Sendable {
    public typealias Limits = ConnectionCap

    /// What becomes of a new connection.
    public enum Admission: Sendable, Equatable {
        /// Admitted; the connections in `shed` (oldest idle first) must be closed to make room.
        case admitted(shed: [Key])
        /// Refused: every connection counted against the cap it hit is busy.
        case refused(Refusal)
    }

    public enum Refusal: Sendable, Equatable, CustomStringConvertible {
        case addressFull(String)
        case listenerFull

        public var description: String {
            switch self {
            case .addressFull(let address): "\(address) holds its limit of busy connections"
            case .listenerFull: "every connection of this listener is busy"
            }
        }
    }

    struct Entry: Sendable {
        var address: String
        var sequence: UInt64
        var busy: Bool
    }

    public let limits: Limits
    private var entries: [Key: Entry] = [:]
    private var perAddress: [String: Int] = [:]
    private var sequence: UInt64 = 0

    public init(limits: Limits) {
        self.limits = limits
    }

    /// Connections held now.
    public var count: Int { entries.count }

    /// Connections held now from `address`.
    public func count(from address: String) -> Int { perAddress[address] ?? 0 }

    /// Decides on a new connection from `address`; when admitted it is counted (idle) at once and
    /// the shed connections are no longer.
    public mutating func admit(_ key: Key, address: String) -> Admission {
        var shed: [Key] = []
        if count(from: address) >= limits.perAddress {
            guard let victim = oldestIdle(from: address) else { return .refused(.addressFull(address)) }
            remove(victim)
            shed.append(victim)
        }
        if entries.count >= limits.total {
            guard let victim = oldestIdleOfLargestHolder() else {
                // Nothing idle anywhere; what was shed for the address stays shed (it was idle).
                return .refused(.listenerFull)
            }
            remove(victim)
            shed.append(victim)
        }
        sequence += 1
        entries[key] = Entry(address: address, sequence: sequence, busy: false)
        perAddress[address, default: 0] += 1
        return .admitted(shed: shed)
    }

    /// Gives up to `count` idle connections (oldest of the largest holders first), to free their
    /// descriptors for something that needs one now (an image to open); they are no longer counted.
    public mutating func shedIdle(_ count: Int) -> [Key] {
        var shed: [Key] = []
        while shed.count < count, let victim = oldestIdleOfLargestHolder() {
            remove(victim)
            shed.append(victim)
        }
        return shed
    }

    /// A connection closed (or was shed): no longer counted. Unknown keys are ignored.
    public mutating func remove(_ key: Key) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        let left = (perAddress[entry.address] ?? 1) - 1
        perAddress[entry.address] = left > 0 ? left : nil
    }

    /// Marks a connection busy (a response in flight: never shed) or idle again. An idle
    /// connection becomes the newest: shedding takes the one idle the longest.
    public mutating func setBusy(_ key: Key, _ busy: Bool) {
        guard var entry = entries[key], entry.busy != busy else { return }
        entry.busy = busy
        if !busy {
            sequence += 1
            entry.sequence = sequence
        }
        entries[key] = entry
    }

    private func oldestIdle(from address: String) -> Key? {
        var best: (key: Key, sequence: UInt64)?
        for (key, entry) in entries where !entry.busy && entry.address == address {
            if best == nil || entry.sequence < best!.sequence { best = (key, entry.sequence) }
        }
        return best?.key
    }

    /// The oldest idle connection of the address holding the most connections (of those with an
    /// idle one; ties: the older connection): a flood sheds itself, not a device's one socket.
    private func oldestIdleOfLargestHolder() -> Key? {
        var oldest: [String: (key: Key, sequence: UInt64)] = [:]
        for (key, entry) in entries where !entry.busy {
            if let known = oldest[entry.address], known.sequence < entry.sequence { continue }
            oldest[entry.address] = (key, entry.sequence)
        }
        let pick = oldest.max { a, b in
            let (countA, countB) = (count(from: a.key), count(from: b.key))
            return countA != countB ? countA < countB : a.value.sequence > b.value.sequence
        }
        return pick?.value.key
    }
}

/// One listener's caps: connections in total and per client address.
public struct ConnectionCap: Sendable, Equatable {
    /// Connections of the listener at once.
    public var total: Int
    /// Connections from one client address at once.
    public var perAddress: Int

    public init(total: Int, perAddress: Int) {
        self.total = max(1, total)
        self.perAddress = max(1, min(perAddress, self.total))
    }
}

/// The connection caps of a gateway's listeners, derived from its open-files limit so that
/// connections can never use up the descriptors the store, the catalog and the registry need.
public struct ConnectionLimits: Sendable, Equatable {
    public var device: ConnectionCap
    public var admin: ConnectionCap
    public var gossip: ConnectionCap

    /// Descriptors kept for everything that is not a connection (store, catalog, registry,
    /// event loops, the blob a response is reading).
    public static func reserve(fileLimit: Int) -> Int { max(64, fileLimit / 4) }

    /// Caps for an open-files limit: each device connection may hold a second descriptor (the
    /// blob it serves), so device connections get 40 % of what is left after the reserve, the
    /// admin API 1/16 (at most 64), gossip 1/8 (at most 256). `deviceTotal` and
    /// `devicePerAddress` override the derived device caps (config `device.maxConnections`,
    /// `device.maxConnectionsPerAddress`).
    public static func derived(fileLimit: Int, deviceTotal: Int? = nil, devicePerAddress: Int? = nil) -> ConnectionLimits {
        let usable = max(32, fileLimit - reserve(fileLimit: fileLimit))
        let device = deviceTotal ?? min(50_000, max(16, usable * 2 / 5))
        let admin = min(64, max(4, usable / 16))
        let gossip = min(256, max(8, usable / 8))
        return ConnectionLimits(
            device: .init(total: device, perAddress: devicePerAddress ?? max(4, min(256, device / 4))),
            admin: .init(total: admin, perAddress: max(2, admin / 2)),
            gossip: .init(total: gossip, perAddress: max(2, min(16, gossip / 4))))
    }
}
