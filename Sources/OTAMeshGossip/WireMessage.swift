/// A gossip member's identity and where it listens (UDP and TCP on the same port).
public struct NodeAddress: Sendable, Hashable, CustomStringConvertible {
    /// Unique node name (≤ 64 bytes of UTF-8).
    public var name: String
    /// 4 (IPv4) or 16 (IPv6) bytes.
    public var ip: [UInt8]
    public var port: UInt16

    public init(name: String, ip: [UInt8], port: UInt16) {
        self.name = name
        self.ip = ip
        self.port = port
    }

    public var description: String {
        let host = ip.count == 4 ? ip.map(String.init).joined(separator: ".") : "[" + hexGroups(ip) + "]"
        return "\(name)@\(host):\(port)"
    }

    private func hexGroups(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// One SWIM message. A packet carries several: the probe first, piggybacked updates after.
public enum WireMessage: Sendable, Hashable {
    case ping(sequence: UInt32, target: NodeAddress, source: NodeAddress)
    /// Ask `requester`'s helper to probe `target` on its behalf (SWIM indirect probe).
    case pingRequest(sequence: UInt32, target: NodeAddress, requester: NodeAddress)
    case ack(sequence: UInt32, from: NodeAddress)
    /// Lifeguard: the helper could not reach the target (tells "target silent" from "I am slow").
    case nack(sequence: UInt32, from: NodeAddress)
    case alive(node: NodeAddress, incarnation: UInt64, metadata: [UInt8])
    case suspect(node: String, incarnation: UInt64, from: String)
    case dead(node: String, incarnation: UInt64, from: String)
    /// A replicated record: owner-numbered (Scuttlebutt), merged by the record's own function.
    case record(key: String, owner: String, version: UInt64, value: [UInt8])
    /// Push-pull: the sender holds every record of `owner` up to `version` (its digest).
    case digest(owner: String, version: UInt64)
    /// Push-pull: the records sent with this cover `owner` up to `version` (a delta's reach).
    case covered(owner: String, version: UInt64)
}

/// Why a payload could not be decoded (counted like a rejected envelope).
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(at: Int, need: Int)
    case tooMany(what: String, count: Int, limit: Int)
    case invalid(String)

    public var description: String {
        switch self {
        case let .truncated(at, need): "truncated at byte \(at): \(need) more bytes needed"
        case let .tooMany(what, count, limit): "\(count) \(what), more than the limit of \(limit)"
        case .invalid(let why): why
        }
    }
}

/// The payload codec (inside the ``SiteKeyring`` envelope):
/// `count u8 | (type u8 | length u16 | body)…`, big-endian. A message of an unknown type is
/// skipped by its length, so newer nodes can add types without breaking older ones. Decoding is
/// total and bounded: every read is checked, names ≤ 64 bytes, values ≤ 1,200 bytes, ≤ 64
/// messages; nothing can make it crash, loop or allocate beyond the packet's size.
public enum WireCodec {
    public static let maxMessages = 64
    public static let maxName = 64
    /// Record keys are names that can carry a digest (`held/<sha256 hex>`).
    public static let maxKey = 200
    public static let maxValue = 1_200

    enum Kind: UInt8 {
        case ping = 1, pingRequest, ack, nack, alive, suspect, dead, record, digest, covered
    }

    public static func encode(_ messages: [WireMessage]) throws(WireError) -> [UInt8] {
        guard messages.count <= maxMessages else { throw .tooMany(what: "messages", count: messages.count, limit: maxMessages) }
        var out: [UInt8] = [UInt8(messages.count)]
        for message in messages {
            var body = Writer()
            let kind: Kind
            switch message {
            case let .ping(sequence, target, source):
                kind = .ping
                body.u32(sequence); try body.node(target); try body.node(source)
            case let .pingRequest(sequence, target, requester):
                kind = .pingRequest
                body.u32(sequence); try body.node(target); try body.node(requester)
            case let .ack(sequence, from):
                kind = .ack
                body.u32(sequence); try body.node(from)
            case let .nack(sequence, from):
                kind = .nack
                body.u32(sequence); try body.node(from)
            case let .alive(node, incarnation, metadata):
                kind = .alive
                try body.node(node); body.u64(incarnation); try body.bytes(metadata)
            case let .suspect(node, incarnation, from):
                kind = .suspect
                try body.name(node); body.u64(incarnation); try body.name(from)
            case let .dead(node, incarnation, from):
                kind = .dead
                try body.name(node); body.u64(incarnation); try body.name(from)
            case let .record(key, owner, version, value):
                kind = .record
                try body.name(key, limit: maxKey); try body.name(owner); body.u64(version); try body.bytes(value)
            case let .digest(owner, version):
                kind = .digest
                try body.name(owner); body.u64(version)
            case let .covered(owner, version):
                kind = .covered
                try body.name(owner); body.u64(version)
            }
            out.append(kind.rawValue)
            out.append(UInt8(body.bytes.count >> 8))
            out.append(UInt8(body.bytes.count & 0xFF))
            out += body.bytes
        }
        return out
    }

    /// Bytes `message` adds to a packet (type, length and body); 0 for a message ``encode(_:)``
    /// would reject. Computed from the field lengths, without encoding: SWIM sizes every queued
    /// update for every packet it fills.
    public static func size(of message: WireMessage) -> Int {
        func name(_ text: String, limit: Int = maxName) -> Int? {
            let count = text.utf8.count
            return count >= 1 && count <= limit ? 1 + count : nil
        }
        func bytes(_ value: [UInt8]) -> Int? { value.count <= maxValue ? 2 + value.count : nil }
        func node(_ address: NodeAddress) -> Int? {
            guard let name = name(address.name), address.ip.count == 4 || address.ip.count == 16 else { return nil }
            return name + 1 + address.ip.count + 2
        }
        let body: Int?
        switch message {
        case let .ping(_, first, second), let .pingRequest(_, first, second):
            body = node(first).flatMap { a in node(second).map { 4 + a + $0 } }
        case let .ack(_, from), let .nack(_, from):
            body = node(from).map { 4 + $0 }
        case let .alive(address, _, metadata):
            body = node(address).flatMap { a in bytes(metadata).map { a + 8 + $0 } }
        case let .suspect(subject, _, from), let .dead(subject, _, from):
            body = name(subject).flatMap { a in name(from).map { a + 8 + $0 } }
        case let .record(key, owner, _, value):
            body = name(key, limit: maxKey).flatMap { a in name(owner).flatMap { b in bytes(value).map { a + b + 8 + $0 } } }
        case let .digest(owner, _), let .covered(owner, _):
            body = name(owner).map { $0 + 8 }
        }
        return body.map { 3 + $0 } ?? 0
    }

    /// Decodes a payload; unknown message types are skipped.
    public static func decode(_ payload: [UInt8]) throws(WireError) -> [WireMessage] {
        var reader = Reader(payload[...])
        let count = Int(try reader.u8())
        guard count <= maxMessages else { throw .tooMany(what: "messages", count: count, limit: maxMessages) }
        var messages: [WireMessage] = []
        for _ in 0..<count {
            let type = try reader.u8()
            let length = Int(try reader.u16())
            var body = Reader(try reader.take(length))
            guard let kind = Kind(rawValue: type) else { continue }
            switch kind {
            case .ping: messages.append(.ping(sequence: try body.u32(), target: try body.node(), source: try body.node()))
            case .pingRequest:
                messages.append(.pingRequest(sequence: try body.u32(), target: try body.node(), requester: try body.node()))
            case .ack: messages.append(.ack(sequence: try body.u32(), from: try body.node()))
            case .nack: messages.append(.nack(sequence: try body.u32(), from: try body.node()))
            case .alive: messages.append(.alive(node: try body.node(), incarnation: try body.u64(), metadata: try body.bytes()))
            case .suspect: messages.append(.suspect(node: try body.name(), incarnation: try body.u64(), from: try body.name()))
            case .dead: messages.append(.dead(node: try body.name(), incarnation: try body.u64(), from: try body.name()))
            case .record:
                messages.append(.record(key: try body.name(limit: maxKey), owner: try body.name(), version: try body.u64(), value: try body.bytes()))
            case .digest: messages.append(.digest(owner: try body.name(), version: try body.u64()))
            case .covered: messages.append(.covered(owner: try body.name(), version: try body.u64()))
            }
            guard body.isAtEnd else { throw .invalid("message type \(type) has \(body.remaining) trailing bytes") }
        }
        guard reader.isAtEnd else { throw .invalid("\(reader.remaining) bytes after the last message") }
        return messages
    }

    struct Writer {
        var bytes: [UInt8] = []
        mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        mutating func u32(_ v: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) } }
        mutating func u64(_ v: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) } }
        mutating func name(_ text: String, limit: Int = WireCodec.maxName) throws(WireError) {
            let utf8 = Array(text.utf8)
            guard !utf8.isEmpty, utf8.count <= limit else {
                throw .invalid("name of \(utf8.count) bytes (1…\(limit) allowed)")
            }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        mutating func bytes(_ value: [UInt8]) throws(WireError) {
            guard value.count <= WireCodec.maxValue else { throw .tooMany(what: "value bytes", count: value.count, limit: WireCodec.maxValue) }
            u16(UInt16(value.count))
            bytes += value
        }
        mutating func node(_ node: NodeAddress) throws(WireError) {
            try name(node.name)
            guard node.ip.count == 4 || node.ip.count == 16 else { throw .invalid("address of \(node.ip.count) bytes (4 or 16)") }
            bytes.append(UInt8(node.ip.count))
            bytes += node.ip
            u16(node.port)
        }
    }

    struct Reader {
        var data: ArraySlice<UInt8>
        init(_ data: ArraySlice<UInt8>) { self.data = data }
        var isAtEnd: Bool { data.isEmpty }
        var remaining: Int { data.count }

        mutating func take(_ count: Int) throws(WireError) -> ArraySlice<UInt8> {
            guard count <= data.count else { throw .truncated(at: data.startIndex, need: count - data.count) }
            defer { data = data.dropFirst(count) }
            return data.prefix(count)
        }
        mutating func u8() throws(WireError) -> UInt8 { try take(1).first! }
        mutating func u16() throws(WireError) -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
        mutating func u32() throws(WireError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func u64() throws(WireError) -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }
        mutating func name(limit: Int = WireCodec.maxName) throws(WireError) -> String {
            let length = Int(try u8())
            guard length >= 1, length <= limit else { throw .invalid("name of \(length) bytes (1…\(limit) allowed)") }
            guard let text = String(validating: try take(length), as: UTF8.self) else { throw .invalid("name is not UTF-8") }
            return text
        }
        mutating func bytes() throws(WireError) -> [UInt8] {
            let length = Int(try u16())
            guard length <= WireCodec.maxValue else { throw .tooMany(what: "value bytes", count: length, limit: WireCodec.maxValue) }
            return Array(try take(length))
        }
        mutating func node() throws(WireError) -> NodeAddress {
            let name = try name()
            let family = Int(try u8())
            guard family == 4 || family == 16 else { throw .invalid("address of \(family) bytes (4 or 16)") }
            let ip = Array(try take(family))
            return NodeAddress(name: name, ip: ip, port: try u16())
        }
    }
}
