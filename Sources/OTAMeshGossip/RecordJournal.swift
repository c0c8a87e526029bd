import Crypto

/// The on-disk journal of a gateway's own durable records (rollout commands, outcomes, census,
/// halts, stage marks, key rotations), so a restarted gateway holds what it wrote before
/// (``ReplicatedRecords/restore(_:)``). Pure: records to bytes and back.
///
/// Append-only; a record written again is appended again and the highest version per key wins
/// on reading, so entries may land in any order. A file starts with ``magic``; each entry is
///
///     u32 body length (big-endian) | body | first 4 bytes of SHA-256(body)
///     body = u64 version | u8 owner length | owner | u8 key length | key | u16 value length | value
///
/// A crash mid-append leaves a torn last entry: reading stops at the first entry that is cut
/// short or fails its check, and says where (the shell rewrites the file from what it read).
public enum RecordJournal {
    public static let magic = Array("otamesh records 1\n".utf8)
    /// Largest entry body: version, both lengths, the longest owner, key and value the wire carries.
    static let maxBody = 8 + 1 + 255 + 1 + WireCodec.maxKey + 2 + WireCodec.maxValue

    public struct Loaded: Sendable, Equatable {
        /// The newest record per (owner, key), ordered by owner, then key.
        public var records: [ReplicatedRecords.Record]
        /// Entries read (a key written five times counts five).
        public var entries: Int
        /// Bytes up to the end of the last good entry.
        public var validLength: Int
        /// Why reading stopped before the end, with the offset; nil when every byte was read.
        public var problem: String?
        /// The problem is only a last entry cut short (a crash mid-append), not damage.
        public var tornTail = false
    }

    /// One entry; nil for a record the wire could not carry either (never written by a node).
    public static func entry(_ record: ReplicatedRecords.Record) -> [UInt8]? {
        let owner = Array(record.owner.utf8), key = Array(record.key.utf8)
        guard owner.count <= 255, !key.isEmpty, key.count <= WireCodec.maxKey, record.value.count <= WireCodec.maxValue else { return nil }
        var body: [UInt8] = []
        body.reserveCapacity(12 + owner.count + key.count + record.value.count)
        for shift in stride(from: 56, through: 0, by: -8) { body.append(UInt8(truncatingIfNeeded: record.version >> UInt64(shift))) }
        body.append(UInt8(owner.count)); body += owner
        body.append(UInt8(key.count)); body += key
        body.append(UInt8(record.value.count >> 8)); body.append(UInt8(truncatingIfNeeded: record.value.count))
        body += record.value
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)]
            + body + tag(body)
    }

    /// A whole journal holding `records` (what a compaction writes).
    public static func file(_ records: [ReplicatedRecords.Record]) -> [UInt8] {
        records.reduce(into: magic) { $0 += entry($1) ?? [] }
    }

    public static func decode(_ bytes: [UInt8]) -> Loaded {
        var newest: [String: ReplicatedRecords.Record] = [:]
        var entries = 0
        func loaded(_ valid: Int, _ problem: String?, torn: Bool = false) -> Loaded {
            Loaded(
                records: newest.values.sorted { ($0.owner, $0.key) < ($1.owner, $1.key) }, entries: entries, validLength: valid, problem: problem,
                tornTail: torn)
        }
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            return loaded(
                0, bytes.isEmpty ? nil : "offset 0: not an otamesh records journal (no '\(String(decoding: magic.dropLast(), as: UTF8.self))' header)")
        }
        var offset = magic.count
        while offset < bytes.count {
            guard bytes.count - offset >= 4 else { return loaded(offset, "offset \(offset): entry cut short (a torn write)", torn: true) }
            let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length >= 14, length <= maxBody else { return loaded(offset, "offset \(offset): entry length \(length) outside 14…\(maxBody)") }
            guard bytes.count - offset - 4 >= length + 4 else { return loaded(offset, "offset \(offset): entry cut short (a torn write)", torn: true) }
            let body = Array(bytes[(offset + 4)..<(offset + 4 + length)])
            guard Array(bytes[(offset + 4 + length)..<(offset + 8 + length)]) == tag(body) else {
                return loaded(offset, "offset \(offset): entry checksum mismatch")
            }
            guard let record = parse(body) else { return loaded(offset, "offset \(offset): entry body malformed") }
            entries += 1
            let slot = record.owner + "\u{0}" + record.key
            if newest[slot].map({ $0.version < record.version }) ?? true { newest[slot] = record }
            offset += 8 + length
        }
        return loaded(offset, nil)
    }

    static func parse(_ body: [UInt8]) -> ReplicatedRecords.Record? {
        var at = 8
        let version = body[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        func field(_ width: Int) -> [UInt8]? {
            guard body.count - at >= width else { return nil }
            let length = body[at..<(at + width)].reduce(0) { $0 << 8 | Int($1) }
            at += width
            guard body.count - at >= length else { return nil }
            defer { at += length }
            return Array(body[at..<(at + length)])
        }
        guard let owner = field(1), let key = field(1), !key.isEmpty, key.count <= WireCodec.maxKey, let value = field(2),
            value.count <= WireCodec.maxValue, at == body.count,
            let ownerText = String(validating: owner, as: UTF8.self), let keyText = String(validating: key, as: UTF8.self)
        else { return nil }
        return ReplicatedRecords.Record(key: keyText, owner: ownerText, version: version, value: value)
    }

    static func tag(_ body: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: body).prefix(4)) }
}
