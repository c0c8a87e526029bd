/// Replicated records, Scuttlebutt style: every gateway owns the records it writes and numbers
/// them with its own increasing version; for one (owner, key) the highest version wins. That
/// merge is commutative, associative and idempotent, so records can arrive by rumour, by
/// anti-entropy, twice or out of order and every replica converges. Pure.
///
/// Anti-entropy: a node sends its ``digest()`` (owner → the version up to which it holds all of
/// that owner's surviving records); the peer answers with ``delta(for:maxRecords:)`` — per owner,
/// the newer records in version order, so a truncated answer leaves no gap — and ``apply(_:)``
/// advances the digest only as far as the answer covered. Rumours merge records but never
/// advance the digest (they may skip versions), so anti-entropy still fills every gap.
public struct ReplicatedRecords: Sendable, Equatable {
    public struct Record: Sendable, Hashable {
        public var key: String
        public var owner: String
        public var version: UInt64
        public var value: [UInt8]

        public init(key: String, owner: String, version: UInt64, value: [UInt8]) {
            self.key = key
            self.owner = owner
            self.version = version
            self.value = value
        }
    }

    /// What a delta covers: the records, and per owner the version the receiver may now claim.
    public struct Delta: Sendable, Equatable {
        public var records: [Record]
        public var upTo: [String: UInt64]
    }

    struct Slot: Hashable {
        var owner: String
        var key: String
    }

    /// This node's name: the owner of what it writes.
    public let owner: String
    var latest: [Slot: Record] = [:]
    /// Per owner: every surviving record with a version ≤ this is held.
    var complete: [String: UInt64] = [:]
    /// This node's own version counter.
    var counter: UInt64 = 0
    /// Versions up to this were numbered by this node's earlier runs (``restore(_:)``,
    /// ``startVersions(after:)``); everything this run writes is numbered above.
    var earlierRuns: UInt64 = 0

    public init(owner: String) {
        self.owner = owner
    }

    /// Numbers this node's next records above `floor`. A restarted node starts from nothing, and
    /// peers still hold its records of the last run at their old versions: a counter restarted
    /// at 1 would lose to them (and their digests would claim its new records) until it passed
    /// them. Starting above a clock reading taken at start (the gateway uses microseconds)
    /// keeps one owner's versions increasing across restarts.
    /// Call before the first ``put(_:_:)``.
    public mutating func startVersions(after floor: UInt64) {
        counter = max(counter, floor)
        earlierRuns = counter
    }

    /// Takes back the records this node wrote in earlier runs (from its own disk), at their
    /// versions, before it writes anything: a restarted gateway that forgot its own halt or
    /// approval would act against it, and its digest — which claims every one of its versions up
    /// to its counter — would tell a peer that never had them that nothing is missing. Records of
    /// other owners are ignored. Call before the first ``put(_:_:)``.
    public mutating func restore(_ saved: [Record]) {
        for record in saved where record.owner == owner {
            let slot = Slot(owner: owner, key: record.key)
            if let held = latest[slot], held.version >= record.version { continue }
            latest[slot] = record
            counter = max(counter, record.version)
        }
        earlierRuns = counter
    }

    /// Writes (or overwrites) one of this node's records.
    @discardableResult
    public mutating func put(_ key: String, _ value: [UInt8]) -> Record {
        counter += 1
        let record = Record(key: key, owner: owner, version: counter, value: value)
        latest[Slot(owner: owner, key: key)] = record
        return record
    }

    /// The record for (owner, key), if any.
    public func get(_ key: String, owner: String) -> Record? { latest[Slot(owner: owner, key: key)] }

    /// Every record, ordered by owner, then key.
    public var records: [Record] { latest.values.sorted { ($0.owner, $0.key) < ($1.owner, $1.key) } }

    /// Merges one record (from a rumour); true when it was news. Only this node writes its
    /// records, but one of its earlier runs that a peer still holds and this node lacks (its
    /// disk lost, or behind) is taken back.
    @discardableResult
    public mutating func merge(_ record: Record) -> Bool {
        guard record.owner != owner || record.version <= earlierRuns else { return false }
        let slot = Slot(owner: record.owner, key: record.key)
        if let held = latest[slot], held.version >= record.version { return false }
        latest[slot] = record
        return true
    }

    /// Owner → the version up to which this node holds everything.
    public func digest() -> [String: UInt64] {
        var digest = complete
        digest[owner] = counter
        return digest
    }

    /// What a peer with `digest` lacks, owners in name order, each owner's records in version
    /// order, at most `maxRecords` in all.
    public func delta(for digest: [String: UInt64], maxRecords: Int) -> Delta {
        var records: [Record] = []
        var upTo: [String: UInt64] = [:]
        let mine = self.digest()
        for (source, held) in mine.sorted(by: { $0.key < $1.key }) {
            let theirs = digest[source] ?? 0
            guard held > theirs else { continue }
            let newer = latest.values.filter { $0.owner == source && $0.version > theirs && $0.version <= held }.sorted { $0.version < $1.version }
            let room = maxRecords - records.count
            if newer.count <= room {
                records += newer
                upTo[source] = held
            } else {
                if room > 0 {
                    records += newer.prefix(room)
                    upTo[source] = newer[room - 1].version
                }
                break
            }
        }
        return Delta(records: records, upTo: upTo)
    }

    /// Applies a delta computed against this node's digest (or an older one); returns the
    /// records that were news.
    @discardableResult
    public mutating func apply(_ delta: Delta) -> [Record] {
        let news = delta.records.filter { merge($0) }
        for (source, version) in delta.upTo where source != owner {
            complete[source] = max(complete[source] ?? 0, version)
        }
        return news
    }
}
