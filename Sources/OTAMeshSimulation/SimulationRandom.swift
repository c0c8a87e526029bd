import OTAMeshCommon

/// The simulator draws from ``SplitMix64`` (OTAMeshCommon), seeded, with independent streams
/// (one per node, one for loss, one for latency, …) derived from the run's single seed, so every
/// draw of a run follows from that seed and nothing else.
/// The streams a run draws from (a node's stream is `nodeBase + index`).
enum RandomStream {
    static let loss: UInt64 = 1
    static let latency: UInt64 = 2
    static let setup: UInt64 = 3
    static let nonce: UInt64 = 4
    static let nodeBase: UInt64 = 1 << 32
}
