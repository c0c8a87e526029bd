import Crypto
import OTAMeshCommon

/// How a target is cut into pieces for swarm transfer between gateways: fixed-size pieces (the
/// last one shorter), a power of two between ``minimumSize`` and ``maximumSize``, at most
/// ``maximumCount`` of them where that allows. Pure.
public struct PieceLayout: Sendable, Hashable {
    public let length: Int64
    public let pieceSize: Int64

    public static let minimumSize: Int64 = 256 << 10
    public static let maximumSize: Int64 = 16 << 20
    /// The piece count `choose` aims below (the piece list then stays ≤ 32 KiB).
    public static let maximumCount: Int64 = 1024

    public init(length: Int64, pieceSize: Int64) throws(PieceError) {
        guard length > 0 else { throw .invalid("length \(length): a target with pieces has at least one byte") }
        guard pieceSize >= Self.minimumSize, pieceSize <= Self.maximumSize, pieceSize & (pieceSize - 1) == 0 else {
            throw .invalid("piece size \(pieceSize): a power of two from \(Self.minimumSize) to \(Self.maximumSize)")
        }
        self.length = length
        self.pieceSize = pieceSize
    }

    /// The layout `release add` records: the smallest allowed size that keeps the count at most
    /// ``maximumCount`` (16 MiB pieces beyond 16 GiB).
    public static func choose(length: Int64) throws(PieceError) -> PieceLayout {
        var size = minimumSize
        while size < maximumSize, (length + size - 1) / size > maximumCount { size <<= 1 }
        return try PieceLayout(length: length, pieceSize: size)
    }

    public var count: Int { Int((length + pieceSize - 1) / pieceSize) }

    /// Piece `index`'s bytes in the target: first offset and length.
    public func span(_ index: Int) -> (offset: Int64, length: Int64) {
        let offset = Int64(index) * pieceSize
        return (offset, min(pieceSize, length - offset))
    }
}

/// A target's piece hashes: SHA-256 of each piece, in order. Its `root` — SHA-256 of the
/// concatenated 32-byte digests — is what the target's signed custom metadata carries
/// (``TargetPieces``), so a list fetched from any peer is checked against the signature's word,
/// and every piece against the list on arrival. Pure.
public struct PieceManifest: Sendable, Hashable {
    public let layout: PieceLayout
    /// The digests, 32 bytes each, concatenated (the wire and on-disk form).
    public let list: [UInt8]

    /// The manifest of `bytes` (what `release add` computes).
    public init(bytes: some Collection<UInt8>, layout: PieceLayout) throws(PieceError) {
        guard Int64(bytes.count) == layout.length else { throw .invalid("\(bytes.count) bytes, the layout says \(layout.length)") }
        var hasher = Hasher(layout: layout)
        hasher.update(bytes)
        list = try hasher.finish().list
        self.layout = layout
    }

    /// A list as received (from a peer, or from disk), checked against the signed `root`.
    public init(list: [UInt8], layout: PieceLayout, root: String) throws(PieceError) {
        guard list.count == layout.count * 32 else {
            throw .invalid("piece list of \(list.count) bytes for \(layout.count) pieces (\(layout.count * 32) expected)")
        }
        let found = hexString(SHA256.hash(data: list))
        guard found == root.lowercased() else { throw .rootMismatch(expected: root.lowercased(), found: found) }
        self.list = list
        self.layout = layout
    }

    init(layout: PieceLayout, list: [UInt8]) {
        self.layout = layout
        self.list = list
    }

    public var root: String { hexString(SHA256.hash(data: list)) }

    /// Piece `index`'s expected SHA-256.
    public func digest(_ index: Int) -> ArraySlice<UInt8> { list[(index * 32)..<(index * 32 + 32)] }

    /// Whether `bytes` are piece `index` (its length and its SHA-256).
    public func verify(_ index: Int, _ bytes: some Collection<UInt8>) -> Bool {
        guard index >= 0, index < layout.count, Int64(bytes.count) == layout.span(index).length else { return false }
        return SHA256.hash(data: Array(bytes)).elementsEqual(digest(index))
    }

    /// Computes a manifest from bytes fed in order, in any chunks (a streamed file).
    public struct Hasher: Sendable {
        let layout: PieceLayout
        var list: [UInt8] = []
        var current = SHA256()
        var inPiece: Int64 = 0
        var total: Int64 = 0

        public init(layout: PieceLayout) {
            self.layout = layout
            list.reserveCapacity(layout.count * 32)
        }

        public mutating func update(_ bytes: some Collection<UInt8>) {
            var rest = bytes[...]
            while !rest.isEmpty {
                let take = Int(min(Int64(rest.count), layout.pieceSize - inPiece))
                let chunk = rest.prefix(take)
                if chunk.withContiguousStorageIfAvailable({ current.update(bufferPointer: UnsafeRawBufferPointer($0)) }) == nil {
                    current.update(data: Array(chunk))
                }
                rest = rest.dropFirst(take)
                inPiece += Int64(take)
                total += Int64(take)
                if inPiece == layout.pieceSize { close() }
            }
        }

        mutating func close() {
            list += current.finalize()
            current = SHA256()
            inPiece = 0
        }

        public mutating func finish() throws(PieceError) -> PieceManifest {
            guard total == layout.length else { throw .invalid("hashed \(total) bytes, the layout says \(layout.length)") }
            if inPiece > 0 { close() }
            return PieceManifest(layout: layout, list: list)
        }
    }
}

/// What a target's signed custom metadata says of its pieces: `"pieces": {"size": N, "root":
/// HEX}`. Targets without it transfer whole.
public struct TargetPieces: Sendable, Hashable {
    public let layout: PieceLayout
    public let root: String

    public init(layout: PieceLayout, root: String) {
        self.layout = layout
        self.root = root.lowercased()
    }

    /// The custom field's value.
    public var json: JSONValue {
        var object = JSONObject()
        object["size"] = .integer(layout.pieceSize)
        object["root"] = .string(root)
        return .object(object)
    }

    /// Reads the `pieces` field of a target of `length` bytes: nil when absent; an error when
    /// present but not as written here (the target is then fetched whole).
    public static func from(custom: JSONValue?, length: Int64) throws(PieceError) -> TargetPieces? {
        guard let field = custom?["pieces"] else { return nil }
        guard let size = field["size"]?.integerValue, let root = field["root"]?.stringValue else {
            throw .invalid("custom.pieces needs an integer size and a root")
        }
        guard root.utf8.count == 64, root.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }) else {
            throw .invalid("custom.pieces.root is not 64 hex digits")
        }
        return TargetPieces(layout: try PieceLayout(length: length, pieceSize: size), root: root)
    }
}

/// Why pieces could not be used.
public enum PieceError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalid(String)
    case rootMismatch(expected: String, found: String)

    public var description: String {
        switch self {
        case .invalid(let why): "pieces: \(why)"
        case .rootMismatch(let expected, let found): "piece list does not match the signed root: expected \(expected), computed \(found)"
        }
    }
}
