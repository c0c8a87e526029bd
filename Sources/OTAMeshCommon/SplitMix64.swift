/// SplitMix64: small, fast, seeded random numbers. Every seeded draw in otamesh comes from it —
/// the simulator, the soak's fault schedule, devicesim's identities and fault offsets, the
/// tests — so a run with the same seed draws the same numbers.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Stream `stream` of a run seeded with `seed`: a generator of its own, so one draw more in
    /// one stream never shifts another. `mixer` spreads the stream numbers (the simulator and
    /// the soak use the default; devicesim its historical constant, so its seeds keep their images).
    public init(seed: UInt64, stream: UInt64, mixer: UInt64 = 0xD1B5_4A32_D192_ED03) {
        var mixed = SplitMix64(seed: seed ^ (stream &* mixer))
        state = mixed.next()
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
