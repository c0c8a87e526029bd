/// One application's share of the replicated records (memberlist's delegate idea): the key
/// prefix it owns, how its values are written and read, and how the records of every owner
/// merge into what the application sees. The mesh carries bytes; only a channel gives them
/// meaning, so holdings, rollouts, device summaries and key rotation never read each other's
/// keys. A record whose value the channel cannot read is skipped, never trusted. Pure.
public protocol GossipChannel {
    associatedtype Value
    associatedtype View

    /// Every key of the channel is `prefix + name`. No channel's prefix starts another's
    /// (``GossipChannels`` checks).
    static var prefix: String { get }
    /// Whether an owner journals its records of this channel and takes them back at restart
    /// (``RecordJournal``). False for what a gateway rebuilds from its own state at start.
    static var durable: Bool { get }
    static func encode(_ value: Value) -> [UInt8]
    /// The value of record `name` (the key without the prefix); nil when it is not one.
    static func decode(name: String, _ bytes: [UInt8]) -> Value?
    /// What the application sees of the channel's readable records of every owner.
    static func merge(_ records: [ChannelRecord<Value>]) -> View
}

/// One readable record of a channel.
public struct ChannelRecord<Value> {
    public var owner: String
    /// The key without the channel's prefix.
    public var name: String
    public var version: UInt64
    public var value: Value

    public init(owner: String, name: String, version: UInt64, value: Value) {
        self.owner = owner
        self.name = name
        self.version = version
        self.value = value
    }
}

extension ChannelRecord: Sendable where Value: Sendable {}
extension ChannelRecord: Equatable where Value: Equatable {}

extension GossipChannel {
    public static func key(_ name: String) -> String { prefix + name }

    /// The readable records of this channel among `records` (of `owner` only, when given).
    public static func records(in records: [ReplicatedRecords.Record], owner: String? = nil) -> [ChannelRecord<Value>] {
        records.compactMap { record in
            guard owner == nil || record.owner == owner, record.key.hasPrefix(prefix) else { return nil }
            let name = String(record.key.dropFirst(prefix.count))
            return decode(name: name, record.value).map { ChannelRecord(owner: record.owner, name: name, version: record.version, value: $0) }
        }
    }

    /// The channel's view of `records`.
    public static func view(of records: [ReplicatedRecords.Record]) -> View { merge(self.records(in: records)) }
}

/// The channels a mesh carries: which keys are durable, and that no two channels share keys.
public struct GossipChannels: Sendable {
    public struct Overlap: Error, CustomStringConvertible {
        public var first: String
        public var second: String
        public var description: String { "gossip channels overlap: prefix \"\(first)\" starts \"\(second)\"" }
    }

    let channels: [(prefix: String, durable: Bool)]

    public init(_ channels: [any GossipChannel.Type]) throws(Overlap) {
        let list = channels.map { (prefix: $0.prefix, durable: $0.durable) }
        for (index, one) in list.enumerated() {
            for other in list[(index + 1)...] where one.prefix.hasPrefix(other.prefix) || other.prefix.hasPrefix(one.prefix) {
                throw one.prefix.count <= other.prefix.count
                    ? Overlap(first: one.prefix, second: other.prefix) : Overlap(first: other.prefix, second: one.prefix)
            }
        }
        self.channels = list
    }

    /// Whether an owner journals its record under `key`: as its channel says; a key no channel
    /// claims is kept (a newer peer's application this gateway does not know).
    public func isDurable(_ key: String) -> Bool {
        channels.first { key.hasPrefix($0.prefix) }?.durable ?? true
    }
}
