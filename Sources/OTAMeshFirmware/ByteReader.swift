/// A bounds-checked little-endian reader over untrusted bytes.
///
/// Every read checks the remaining length first, so a header that claims more than
/// the file holds produces ``ImageProblem/truncated(format:what:offset:needed:available:)``
/// instead of a trap, and nothing is ever allocated from a claimed length.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    let format: ImageFormat
    private(set) var offset: Int

    init(_ bytes: ArraySlice<UInt8>, format: ImageFormat, offset: Int = 0) {
        self.bytes = bytes
        self.format = format
        self.offset = offset
    }

    /// Bytes left after ``offset``.
    var remaining: Int { max(0, bytes.count - offset) }

    mutating func require(_ count: Int, for what: @autoclosure () -> String) throws(ImageProblem) {
        guard count >= 0, count <= remaining else {
            throw .truncated(format: format, what: what(), offset: offset, needed: count, available: remaining)
        }
    }

    mutating func u8(_ what: @autoclosure () -> String) throws(ImageProblem) -> UInt8 {
        try require(1, for: what())
        defer { offset += 1 }
        return bytes[bytes.startIndex + offset]
    }

    mutating func u16(_ what: @autoclosure () -> String) throws(ImageProblem) -> UInt16 {
        try require(2, for: what())
        defer { offset += 2 }
        return ByteReader.u16(bytes, at: offset)
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(ImageProblem) -> UInt32 {
        try require(4, for: what())
        defer { offset += 4 }
        return ByteReader.u32(bytes, at: offset)
    }

    /// Returns the next `count` bytes as a slice of the underlying storage (no copy).
    mutating func slice(_ count: Int, _ what: @autoclosure () -> String) throws(ImageProblem) -> ArraySlice<UInt8> {
        try require(count, for: what())
        let start = bytes.startIndex + offset
        defer { offset += count }
        return bytes[start..<(start + count)]
    }

    mutating func skip(_ count: Int, _ what: @autoclosure () -> String) throws(ImageProblem) {
        try require(count, for: what())
        offset += count
    }

    mutating func seek(to newOffset: Int, _ what: @autoclosure () -> String) throws(ImageProblem) {
        guard newOffset >= 0, newOffset <= bytes.count else {
            throw .truncated(format: format, what: what(), offset: newOffset, needed: 0, available: 0)
        }
        offset = newOffset
    }

    /// Little-endian u16 at a relative offset; the caller has checked the bounds.
    static func u16(_ bytes: ArraySlice<UInt8>, at offset: Int) -> UInt16 {
        let i = bytes.startIndex + offset
        return UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
    }

    /// Little-endian u32 at a relative offset; the caller has checked the bounds.
    static func u32(_ bytes: ArraySlice<UInt8>, at offset: Int) -> UInt32 {
        let i = bytes.startIndex + offset
        return UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    }
}

extension ArraySlice<UInt8> {
    /// Decodes a fixed-size C string field: bytes up to the first NUL, as UTF-8 with
    /// invalid sequences replaced and control characters dropped, so a hostile image
    /// cannot inject terminal escapes into `image inspect` output.
    func cString() -> String {
        let end = firstIndex(of: 0) ?? endIndex
        let text = String(decoding: self[startIndex..<end], as: UTF8.self)
        return String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
    }
}

/// `0x`-prefixed lowercase hex of an integer, e.g. `0x81`.
func hex(_ value: some BinaryInteger) -> String {
    "0x" + String(value, radix: 16)
}
