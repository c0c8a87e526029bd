/// The simulator's random numbers: SplitMix64, seeded, with independent streams (one per node,
/// one for loss, one for latency, …) derived from the run's single seed, so every draw of a run
/// follows from that seed and nothing else.
public struct SimulationRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Stream `stream` of the run seeded with `seed`.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SimulationRandom(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = mixer.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform draw from [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// The streams a run draws from (a node's stream is `nodeBase + index`).
enum RandomStream {
    static let loss: UInt64 = 1
    static let latency: UInt64 = 2
    static let setup: UInt64 = 3
    static let nonce: UInt64 = 4
    static let nodeBase: UInt64 = 1 << 32
}
