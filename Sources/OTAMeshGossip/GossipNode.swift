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

    /// Most records in one push-pull leg (the stream splits them into packets of 64 messages).
    public static var maxDeltaRecords: Int { 4_096 }

    /// A node that joins through seeds, or one that starts from a shared converged view of the
    /// cluster (see ``SWIM/init(me:metadata:settings:random:membership:)``).
    public init(me: NodeAddress, metadata: [UInt8] = [], settings: SWIMSettings = SWIMSettings(), random: Random,
                membership: SWIMMembership? = nil) {
        swim = SWIM(me: me, metadata: metadata, settings: settings, random: random, membership: membership)
        records = ReplicatedRecords(owner: me.name)
    }

    public var name: String { swim.me.name }

    /// Writes one of this node's records and starts spreading it.
    @discardableResult
    public mutating func put(_ key: String, _ value: [UInt8]) -> ReplicatedRecords.Record {
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
    public mutating func receive(_ messages: [WireMessage], now: Double) -> [SWIM<Random>.Outbound] {
        for case let .record(key, owner, version, value) in messages {
            let record = ReplicatedRecords.Record(key: key, owner: owner, version: version, value: value)
            if records.merge(record) {
                changes.append(record)
                spread(record)
            }
        }
        return swim.receive(messages, now: now)
    }

    mutating func spread(_ record: ReplicatedRecords.Record) {
        swim.publish(.record(key: record.key, owner: record.owner, version: record.version, value: record.value),
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
        for record in delta.records where records.get(record.key, owner: record.owner).map({ $0.version < record.version }) ?? true
            && record.owner != name
        {
            changes.append(record)
        }
        records.apply(delta)
    }

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
