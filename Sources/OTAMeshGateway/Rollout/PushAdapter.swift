import OTAMeshRollout

/// The image a push adapter sends: a verified blob of the cache, and the URL devices that fetch
/// by URL are given.
public struct PushImage: Sendable, Equatable {
    public var path: String
    public var sha256: String
    public var length: Int64
    public var version: String?
    /// The blob file (read-only, verified).
    public var file: String
    /// `http://GATEWAY:8070/v1/targets/PATH` as the device's segment reaches it.
    public var url: String?
}

/// Why a push failed, as the adapter saw it: typed, so rollouts count it and admins read it.
public struct PushFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The device refused (wrong variant, no space, bad password, 4xx/5xx).
        case refused
        /// The link failed (connect, timeout, reset); the retry policy may try again.
        case network
        /// The device took the image but came back running another version.
        case rebootedIntoOld = "rebooted-into-old"
        case timeout
    }

    public var kind: Kind
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "\(kind.rawValue): \(reason)" }
}

/// One device family's push protocol ("Upgrade local": the gateway plays the phone app). The
/// adapters themselves (projectMM, ArduinoOTA, HTTP upload, generic fetch-URL) come with the
/// push issue; the rollout engine drives any registered adapter through this interface.
public protocol PushAdapter: Sendable {
    /// The device family (``DeviceRecord/family``) this adapter serves.
    var family: String { get }

    /// Sends `image` to `device` and waits until it reports the version it runs after its
    /// reboot; returns that version. Calls `progress` with `.downloading` when bytes start to
    /// flow and `.installing` when the whole image reached the device.
    func push(_ image: PushImage, to device: DeviceRecord, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String
}
