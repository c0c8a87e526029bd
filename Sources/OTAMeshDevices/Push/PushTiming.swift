import OTAMeshCommon

/// Timeouts and intervals of one push, milliseconds: the same knobs for every push family
/// (``ProjectMMPush/Timing`` and ``HTTPUploadPush/Timing`` are this type).
public struct PushTiming: Sendable, Equatable {
    public var pollInterval: Int64 = 1000
    /// The whole push, from the first request to the confirmed version.
    public var deadline: Int64 = 600_000
    /// How long the device may be unreachable once it took the image (a reboot takes seconds).
    public var unreachableLimit: Int64 = 120_000
    /// HTTP upload only (projectMM reports its reboot in its status): how long a device that
    /// never went away may keep reporting the old version after the upload before it counts as
    /// rebooted into the old firmware.
    public var rebootGrace: Int64 = 30_000
    /// Retries while the device cannot be reached at all, before it took the image.
    public var retry = RetryPolicy()

    public init() {
        retry.retryTimeout = 30
    }
}

extension PushTiming {
    /// What the retry-timeout rule says once attempt `attempt` could not reach the device (before
    /// it took the image; `started` is the push's start): the time to try again, or why not.
    /// Network failures retry until the retry timeout; the push state machines all ask here.
    func networkRetry(_ reason: String, attempt: Int, started: Int64, now: Int64, random: Double) -> Result<Int64, RetryExhausted> {
        switch retry.decide(.network(reason), attempt: attempt, elapsed: Double(now - started) / 1000, random: random) {
        case .retry(let after): .success(now + max(1, Int64(after * 1000)))
        case .fail(let why): .failure(RetryExhausted(reason: why))
        }
    }
}

/// The retry timeout ran out (the policy's words).
struct RetryExhausted: Error {
    var reason: String
}
