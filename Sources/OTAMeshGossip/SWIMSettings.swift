/// SWIM's timing and sizes: memberlist's LAN profile unless a member says otherwise.
public struct SWIMSettings: Sendable, Equatable {
    /// Protocol period: one probe per period (memberlist ProbeInterval 1 s).
    public var probeInterval = 1.0
    /// Wait for a direct ack before asking helpers (memberlist ProbeTimeout 500 ms).
    public var probeTimeout = 0.5
    /// Helpers asked to probe indirectly (memberlist IndirectChecks 3).
    public var indirectChecks = 3
    /// Retransmits per update = multiplier × ⌈log10(N + 1)⌉ (memberlist RetransmitMult 4).
    public var retransmitMultiplier = 4
    /// Suspicion timeout min = multiplier × max(1, log10 N) × probeInterval (SuspicionMult 4)…
    public var suspicionMultiplier = 4.0
    /// …max = this × min (SuspicionMaxTimeoutMult 6), shrinking with independent confirmations.
    public var suspicionMaxMultiplier = 6.0
    /// Lifeguard local health: probe interval and timeout scale by (1 + score), score ≤ this − 1.
    public var awarenessMax = 8
    /// Dead members are forgotten after this (memberlist GossipToTheDeadTime 30 s).
    public var reapTimeout = 30.0
    /// Most piggybacked updates per packet.
    public var maxPiggyback = 12
    /// Gossip round: pending updates go to `gossipNodes` random members this often, besides
    /// riding on probes (memberlist GossipInterval 200 ms, GossipNodes 3).
    public var gossipInterval = 0.2
    public var gossipNodes = 3
    /// Largest UDP payload before encryption (memberlist UDPBufferSize 1,400 on the wire).
    public var maxPacketBytes = 1_400 - SiteKeyring.overhead
    /// Full-state anti-entropy over TCP with one random member this often (memberlist
    /// PushPullInterval 30 s); the shell also runs one with every seed it joins.
    public var pushPullInterval = 30.0

    public init() {}

    /// A setting out of its range: which, and what it must be.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var setting: String
        public var rule: String
        public var description: String { "gossip setting \(setting): \(rule)" }
    }

    /// These settings, if SWIM can run on them: every interval and count positive, the probe
    /// timeout shorter than the probe interval (else every probe goes indirect), suspicion at
    /// least one period, and a packet large enough for a message and at most a UDP datagram.
    public func validated() throws(Invalid) -> SWIMSettings {
        func check(_ ok: Bool, _ setting: String, _ rule: String) throws(Invalid) {
            if !ok { throw Invalid(setting: setting, rule: rule) }
        }
        for (name, value) in [
            ("probeInterval", probeInterval), ("probeTimeout", probeTimeout), ("gossipInterval", gossipInterval),
            ("reapTimeout", reapTimeout), ("pushPullInterval", pushPullInterval),
        ] {
            try check(value.isFinite && value > 0, name, "must be a positive number of seconds, is \(value)")
        }
        try check(probeTimeout < probeInterval, "probeTimeout", "must be shorter than probeInterval (\(probeInterval) s), is \(probeTimeout) s")
        for (name, value) in [
            ("indirectChecks", indirectChecks), ("retransmitMultiplier", retransmitMultiplier), ("awarenessMax", awarenessMax),
            ("maxPiggyback", maxPiggyback), ("gossipNodes", gossipNodes),
        ] {
            try check(value >= 1, name, "must be at least 1, is \(value)")
        }
        try check(suspicionMultiplier.isFinite && suspicionMultiplier >= 1, "suspicionMultiplier", "must be at least 1, is \(suspicionMultiplier)")
        try check(
            suspicionMaxMultiplier.isFinite && suspicionMaxMultiplier >= 1, "suspicionMaxMultiplier", "must be at least 1, is \(suspicionMaxMultiplier)")
        try check(
            (256...(65_507 - SiteKeyring.overhead)).contains(maxPacketBytes), "maxPacketBytes",
            "must be 256…\(65_507 - SiteKeyring.overhead) bytes, is \(maxPacketBytes)")
        return self
    }
}

/// What this node believes about a member.
public struct SWIMMember: Sendable, Equatable {
    public enum Status: Int, Sendable, Comparable {
        case alive = 0, suspect = 1, dead = 2
        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var address: NodeAddress
    public var incarnation: UInt64
    public var status: Status
    public var metadata: [UInt8]
    /// When the status last changed (seconds).
    public var since: Double
    /// Dead because it said so itself (a graceful leave), not because it stopped answering.
    public var left = false

    public init(address: NodeAddress, incarnation: UInt64, status: Status, metadata: [UInt8], since: Double) {
        self.address = address
        self.incarnation = incarnation
        self.status = status
        self.metadata = metadata
        self.since = since
    }
}
