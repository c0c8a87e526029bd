import OTAMeshTransfer

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
