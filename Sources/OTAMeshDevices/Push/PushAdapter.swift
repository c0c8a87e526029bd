import OTAMeshCommon
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
    /// The firmware variant (hardware key) the image is built for, when the target says
    /// (projectMM: `esp32`, `esp32-eth`, `esp32s3-n16r8`, …).
    public var variant: String?
    /// A filesystem image (a device's configuration, apps.md) rather than firmware: the
    /// `config-id` its configuration file holds, which the device reports once it mounted it.
    public var configID: String?

    public init(
        path: String, sha256: String, length: Int64, version: String?, file: String, url: String?, variant: String? = nil, configID: String? = nil
    ) {
        self.configID = configID
        self.path = path
        self.sha256 = sha256
        self.length = length
        self.version = version
        self.file = file
        self.url = url
        self.variant = variant
    }
}

/// The device a push goes to, as much of it as an adapter needs. Built from the gateway's
/// device registry, so this module does not depend on it.
public struct PushTarget: Sendable, Equatable {
    public var id: String
    public var family: DeviceFamily
    public var host: String
    public var port: Int
    /// The firmware variant the registry last saw, if any.
    public var variant: String?
    /// The version the registry last saw, if any.
    public var version: String?
    /// `http://HOST:PORT` of an HTTP proxy the device is reached through, if the registry says so.
    public var proxy: String?
    /// The device's secret from the registry's secret store (HTTP basic auth, ArduinoOTA
    /// password), if it has one. Redacted in every printed form.
    public var credentials: PushCredentials?
    /// Per-device adapter settings from the registry (`upload_path`, `version_path`,
    /// `version_port`, `dialect`, …); each adapter documents the keys it reads.
    public var options: [String: String]

    public init(
        id: String, family: DeviceFamily, host: String, port: Int, variant: String? = nil, version: String? = nil, proxy: String? = nil,
        credentials: PushCredentials? = nil, options: [String: String] = [:]
    ) {
        self.id = id
        self.family = family
        self.host = host
        self.port = port
        self.variant = variant
        self.version = version
        self.proxy = proxy
        self.credentials = credentials
        self.options = options
    }

    /// Splits a registry address (`HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 literal) into
    /// host and port; `defaultPort` when it names none.
    public static func hostAndPort(_ address: String, defaultPort: Int) -> (host: String, port: Int) {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            let host = String(address[address.index(after: address.startIndex)..<close])
            let rest = address[address.index(after: close)...]
            if rest.hasPrefix(":"), let port = Int(rest.dropFirst()) { return (host, port) }
            return (host, defaultPort)
        }
        let parts = address.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, let port = Int(parts[1]) { return (String(parts[0]), port) }
        return (address, defaultPort)
    }
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
/// rollout engine drives any registered adapter through this interface.
public protocol PushAdapter: Sendable {
    /// The device family (the registry's `family`) this adapter serves.
    var family: DeviceFamily { get }

    /// Sends `image` to `device` and waits until it reports the version it runs after its
    /// reboot; returns that version. Calls `progress` with `.downloading` when bytes start to
    /// flow and `.installing` when the whole image reached the device.
    func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String
}
