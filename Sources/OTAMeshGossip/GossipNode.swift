#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One gateway's whole gossip state: SWIM membership plus the replicated records that ride on it.
/// Pure like its parts — the NIO shell feeds it packets, streams and time, and sends what it
/// returns.
///
/// Records spread two ways: as rumours, piggybacked like membership updates (every node that
/// learns a record from a rumour passes it on, within the retransmit limit), and by push-pull,
/// a three-leg exchange over a stream that also swaps full membership state:
///
///     A → B   request:  A's member states + A's digest
///     B → A   reply:    B's member states + the records A lacks (+ how far they reach) + B's digest
///     A → B   finish:   the records B lacks (+ how far they reach)
public struct GossipNode<Random: RandomNumberGenerator & Sendable>: Sendable {
    public private(set) var swim: SWIM<Random>
    public private(set) var records: ReplicatedRecords
    /// Records that were news, since the last ``takeRecordChanges()``.
    var changes: [ReplicatedRecords.Record] = []
    var nextPushPullAt: Double?
    /// Members seen failed, kept past SWIM's reap for reconnect attempts (Serf's failed list).
    var failed: [String: (address: NodeAddress, since: Double)] = [:]
    var nextReconnectAt: Double?

    /// How often to try one failed member again, and for how long (Serf ReconnectInterval
    /// 30 s — 10 s here, so a healed partition rejoins sooner — and ReconnectTimeout 24 h).
    public static var reconnectInterval: Double { 10 }
    public static var reconnectTimeout: Double { 86_400 }

    /// Most records in one push-pull leg (the stream splits them into packets of 64 messages).
    public static var maxDeltaRecords: Int { 4_096 }

    /// A node that joins through seeds, or one that starts from a shared converged view of the
    /// cluster (see ``SWIM/init(me:metadata:settings:random:membership:)``).
    public init(
        me: NodeAddress, metadata: [UInt8] = [], settings: SWIMSettings = SWIMSettings(), random: Random,
        membership: SWIMMembership? = nil
    ) {
        swim = SWIM(me: me, metadata: metadata, settings: settings, random: random, membership: membership)
        records = ReplicatedRecords(owner: me.name)
    }

    public var name: String { swim.me.name }

    /// See ``ReplicatedRecords/startVersions(after:)``.
    public mutating func startRecordVersions(after floor: UInt64) { records.startVersions(after: floor) }

    /// See ``ReplicatedRecords/restore(_:)``: the node's own records from its disk, before it
    /// writes or gossips anything. Peers that lack them get them by push-pull.
    public mutating func restoreRecords(_ saved: [ReplicatedRecords.Record]) { records.restore(saved) }

    /// Writes one of this node's records and starts spreading it. A key or value the wire
    /// cannot carry is refused here, so no queued update can ever make a packet unencodable.
    @discardableResult
    public mutating func put(_ key: String, _ value: [UInt8]) throws(WireError) -> ReplicatedRecords.Record {
        guard !key.utf8.isEmpty, key.utf8.count <= WireCodec.maxKey else {
            throw .invalid("record key of \(key.utf8.count) bytes (1…\(WireCodec.maxKey) allowed)")
        }
        guard value.count <= WireCodec.maxValue else { throw .tooMany(what: "value bytes", count: value.count, limit: WireCodec.maxValue) }
        let record = records.put(key, value)
        spread(record)
        return record
    }

    public mutating func updateMetadata(_ metadata: [UInt8]) { swim.updateMetadata(metadata) }
    public mutating func join(_ seeds: [NodeAddress], now: Double) -> [SWIM<Random>.Outbound] { swim.join(seeds, now: now) }
    public mutating func tick(now: Double) -> [SWIM<Random>.Outbound] { swim.tick(now: now) }
    public mutating func takeEvents() -> [SWIM<Random>.Event] { swim.takeEvents() }

    /// Records that were news since the last call (to act on: holdings, rollouts).
    public mutating func takeRecordChanges() -> [ReplicatedRecords.Record] {
        defer { changes.removeAll() }
        return changes
    }

    /// Handles one decoded UDP packet: membership through SWIM, records merged and passed on.
    /// A record that is news is pushed on at once (a gossip round now, not at the next tick):
    /// the same number of transmissions, each hop up to a gossip interval sooner.
    public mutating func receive(_ messages: [WireMessage], now: Double) -> [SWIM<Random>.Outbound] {
        var news = false
        for case let .record(key, owner, version, value) in messages {
            let record = ReplicatedRecords.Record(key: key, owner: owner, version: version, value: value)
            if records.merge(record) {
                changes.append(record)
                spread(record)
                news = true
            }
        }
        let replies = swim.receive(messages, now: now)
        return news ? replies + swim.gossip() : replies
    }

    /// A gossip round now (after ``put(_:_:)``, so a new record leaves at once).
    public mutating func gossipNow() -> [SWIM<Random>.Outbound] { swim.gossip() }

    mutating func spread(_ record: ReplicatedRecords.Record) {
        swim.publish(
            .record(key: record.key, owner: record.owner, version: record.version, value: record.value),
            subject: "record \(record.owner) \(record.key)")
    }

    // MARK: Push-pull

    /// The member to run a push-pull with now, if one is due: `pushPullInterval` after the
    /// first call, then every ``pushPullPeriod``.
    public mutating func duePushPull(now: Double) -> NodeAddress? {
        guard let due = nextPushPullAt else {
            nextPushPullAt = now + swim.settings.pushPullInterval
            return nil
        }
        guard now >= due else { return nil }
        nextPushPullAt = now + pushPullPeriod
        return swim.pick(1, excluding: []).first?.address
    }

    /// A failed member to try a push-pull with now, if one is due. After a partition heals
    /// neither side probes the other (both think it dead); this is what brings them back.
    public mutating func dueReconnect(now: Double) -> NodeAddress? {
        for member in swim.members.values where member.address.name != name {
            if member.status == .dead {
                if failed[member.address.name] == nil { failed[member.address.name] = (member.address, now) }
            } else {
                failed[member.address.name] = nil
            }
        }
        failed = failed.filter { now - $0.value.since < Self.reconnectTimeout }
        guard let due = nextReconnectAt else {
            nextReconnectAt = now + Self.reconnectInterval
            return nil
        }
        guard now >= due else { return nil }
        nextReconnectAt = now + Self.reconnectInterval
        guard !failed.isEmpty else { return nil }
        let names = failed.keys.sorted()
        return failed[names[Int(UInt64.random(in: 0..<UInt64(names.count), using: &swim.random))]]?.address
    }

    /// Time between push-pulls at the cluster's current size: `pushPullInterval`, scaled up
    /// for clusters over 32 nodes as memberlist does (×(⌈log2 N − log2 32⌉ + 1)), so the total
    /// anti-entropy traffic grows slowly with size.
    public var pushPullPeriod: Double {
        let n = Double(swim.members.count + 1)
        let scale = n <= 32 ? 1 : (log2(n) - log2(32)).rounded(.up) + 1
        return swim.settings.pushPullInterval * scale
    }

    /// Leg 1 (initiator): our member states and record digest.
    public func pushPullRequest() -> [WireMessage] {
        swim.stateMessages() + records.digest().sorted { $0.key < $1.key }.map { .digest(owner: $0.key, version: $0.value) }
    }

    /// Leg 2 (responder): merges the initiator's states; answers with ours, the records it
    /// lacks, and our digest.
    public mutating func answerPushPull(_ request: [WireMessage], now: Double) -> [WireMessage] {
        swim.mergeState(request, now: now)
        let theirs = Self.digest(in: request)
        return swim.stateMessages() + Self.messages(records.delta(for: theirs, maxRecords: Self.maxDeltaRecords))
            + records.digest().sorted { $0.key < $1.key }.map { .digest(owner: $0.key, version: $0.value) }
    }

    /// Leg 3 (initiator): merges the reply; returns the records the responder lacks.
    public mutating func completePushPull(_ reply: [WireMessage], now: Double) -> [WireMessage] {
        swim.mergeState(reply, now: now)
        apply(reply)
        return Self.messages(records.delta(for: Self.digest(in: reply), maxRecords: Self.maxDeltaRecords))
    }

    /// Leg 3 received (responder): merges the records.
    public mutating func finishPushPull(_ finish: [WireMessage]) {
        apply(finish)
    }

    mutating func apply(_ messages: [WireMessage]) {
        var delta = ReplicatedRecords.Delta(records: [], upTo: [:])
        for message in messages {
            switch message {
            case let .record(key, owner, version, value):
                delta.records.append(ReplicatedRecords.Record(key: key, owner: owner, version: version, value: value))
            case let .covered(owner, version): delta.upTo[owner] = version
            default: continue
            }
        }
        let news = records.apply(delta)
        changes += news
        // What push-pull brought is passed on as rumour too, so news that reached one side of a
        // healed partition (a rollout halt, say) crosses in rounds, not push-pull periods. A
        // large catch-up is left to push-pull, to keep the broadcast queue bounded.
        if news.count <= Self.maxRespread {
            for record in news { spread(record) }
        }
    }

    /// Most records of one push-pull leg passed on as rumour.
    static var maxRespread: Int { 64 }

    static func digest(in messages: [WireMessage]) -> [String: UInt64] {
        var digest: [String: UInt64] = [:]
        for case let .digest(owner, version) in messages { digest[owner] = max(digest[owner] ?? 0, version) }
        return digest
    }

    static func messages(_ delta: ReplicatedRecords.Delta) -> [WireMessage] {
        delta.records.map { .record(key: $0.key, owner: $0.owner, version: $0.version, value: $0.value) }
            + delta.upTo.sorted { $0.key < $1.key }.map { .covered(owner: $0.key, version: $0.value) }
    }
}
