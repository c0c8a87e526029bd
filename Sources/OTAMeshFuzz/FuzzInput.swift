/// A cursor over fuzz bytes: the targets that need several inputs (a request's parts, a push
/// machine's events) take them from the front, so every byte string is some valid call.
struct FuzzInput {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    var isEmpty: Bool { bytes.isEmpty }

    /// The next byte, 0 once the input is used up.
    mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    /// A number below `bound` (bound > 0) from the next byte.
    mutating func pick(_ bound: Int) -> Int { Int(byte()) % bound }

    mutating func pick<T>(_ choices: [T]) -> T { choices[pick(choices.count)] }

    /// Two bytes, big-endian.
    mutating func u16() -> Int { Int(byte()) << 8 | Int(byte()) }

    /// A chunk: a length byte then that many bytes (fewer at the end of the input).
    mutating func chunk() -> [UInt8] {
        let length = Int(byte())
        let taken = bytes.prefix(length)
        bytes = bytes.dropFirst(length)
        return Array(taken)
    }

    mutating func text() -> String { String(decoding: chunk(), as: UTF8.self) }

    /// Everything left.
    mutating func rest() -> [UInt8] {
        defer { bytes = [] }
        return Array(bytes)
    }
}
