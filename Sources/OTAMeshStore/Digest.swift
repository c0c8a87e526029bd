/// A SHA-256 digest as 64 lowercase hex digits — the name of a blob.
public struct BlobDigest: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let hex: String

    /// Accepts exactly 64 hex digits (either case, stored lowercase).
    public init(hex text: String) throws(StoreError) {
        let lower = text.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw .invalidDigest(text)
        }
        self.hex = lower
    }

    init(trusted hex: String) { self.hex = hex }

    /// Two-character fan-out directory (`ab` for `ab12…`).
    public var fanout: String { String(hex.prefix(2)) }

    public var description: String { hex }

    public static func < (lhs: BlobDigest, rhs: BlobDigest) -> Bool { lhs.hex < rhs.hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(hex: text) } catch { throw error }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// What the caller knows about content before it arrives (from signed metadata, or a user's
/// `--sha256/--size`). An ingest fails, leaving no trace, if the bytes differ.
public struct ExpectedContent: Sendable, Hashable {
    public let digest: BlobDigest
    public let size: Int64?

    public init(digest: BlobDigest, size: Int64? = nil) {
        self.digest = digest
        self.size = size
    }
}
