/// Deterministic byte streams and random numbers: every run with the same seed makes the same
/// images, the same identities and the same fault offsets.
enum DeterministicBytes {
    /// xorshift64 bytes (the generator `make-image` has always used for its bodies).
    static func make(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }
}
