import Crypto

/// Deterministic stage selection: every gateway computes the same answer for a device from the
/// rollout id and the device id alone (ARCHITECTURE.md, "The flow of one release", step 3).
///
/// `bucket = SHA-256(rolloutID ‖ deviceID) mod 10000`, the digest read as one big-endian
/// 256-bit integer and `‖` plain concatenation of the UTF-8 bytes (rollout ids have a fixed
/// length, so the split is unambiguous). A device is in stage k iff `bucket < stages[k] × 100`.
/// A device's bucket never depends on other devices, so adding devices moves no one between
/// stages, and cumulative stages only ever add devices.
public enum StageSelection {
    public static let buckets = 10_000

    public static func bucket(rollout: String, device: String) -> Int {
        var hasher = SHA256()
        hasher.update(data: Array(rollout.utf8))
        hasher.update(data: Array(device.utf8))
        var remainder = 0
        for byte in hasher.finalize() { remainder = (remainder * 256 + Int(byte)) % buckets }
        return remainder
    }

    /// The first stage index whose bound exceeds `bucket`, or nil when no stage reaches it.
    public static func firstStage(ofBucket bucket: Int, stages: [Int]) -> Int? {
        stages.firstIndex { bucket < $0 * 100 }
    }
}
