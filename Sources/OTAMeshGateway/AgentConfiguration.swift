import OTAMeshCommon
import OTAMeshDevices
import OTAMeshFirmware
import OTAMeshRollout
import OTAMeshTransfer
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Everything an agent needs to start. Built in layers, later ones winning:
/// embedded defaults < config file (YAML) < environment (`OTAMESH_*`) < command-line flags.
public struct AgentConfiguration: Sendable, Equatable {
    /// Data directory (catalog, blobs, partials, lock).
    public var dataDirectory = "./otamesh-data"
    /// Name this gateway reports; defaults to the host name.
    public var nodeName: String
    /// Admin API + `/metrics` listener.
    public var adminListen = ListenAddress(host: "127.0.0.1", port: 8071)
    /// The admin API's bearer token files (role admin, role read-only); nil = in the data
    /// directory's `keys/`. Each is created with a random token when missing.
    public var adminTokenFile: String?
    public var adminReadTokenFile: String?
    /// Device-facing HTTP listener (images, manifests, httpUpdate, FOTA).
    public var deviceListen = ListenAddress(host: "0.0.0.0", port: 8070)
    /// Device-facing HTTPS listener; serves only once the site CA issued this gateway a
    /// certificate (`otamesh keys site-ca`). nil = off.
    public var deviceTLSListen: ListenAddress? = ListenAddress(host: "0.0.0.0", port: 8443)
    /// Seconds a device connection may send nothing (with no response in flight) before it is closed.
    public var deviceIdleTimeout: Double = 120
    /// Seconds an admin API connection may stay idle before it is closed.
    public var adminIdleTimeout: Double = 60
    /// Whether the admin API speaks HTTPS with the site CA's gateway certificate: `auto` when
    /// ``adminListen`` is not a loopback address (see ``adminTransport(hasCertificate:)``).
    public var adminTLS: AdminTLSMode = .auto
    /// Serve the admin API in clear text on a non-loopback address all the same (its tokens
    /// then cross the network readable); refused at start without it.
    public var adminInsecureClearText = false
    /// Device connections at once, both device listeners together (nil: derived from the
    /// open-files limit, ``ConnectionLimits``).
    public var deviceMaxConnections: Int?
    /// Device connections at once from one address (nil: derived).
    public var deviceMaxConnectionsPerAddress: Int?
    /// Cache quota in bytes (nil = unlimited).
    public var cacheQuotaBytes: Int64? = 8 << 30
    /// Partials older than this (seconds) are dropped by garbage collection.
    public var partialMaxAge: Double = 7 * 86_400
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`.
    public var logLevel = "info"
    /// `text` or `json`.
    public var logFormat = LogFormat.text
    /// Upstream TUF repository (nil = no upstream sync).
    public var upstreamMetadataURL: String?
    public var upstreamTargetsURL: String?
    /// Target path globs to fetch (empty = every top-level target).
    public var upstreamTargets: [String] = []
    /// Seconds between upstream polls.
    public var upstreamInterval: Double = 300
    /// Which upstream-connected gateways fetch a new image for the site (the others take it
    /// from the mesh).
    public var upstreamPlan = UpstreamFetchPlan(fetchers: 1, handoverMS: 600_000)
    /// HTTP proxy for upstream transfers (overrides HTTP_PROXY/HTTPS_PROXY); hosts that bypass it.
    public var upstreamProxy: String?
    public var upstreamNoProxy: [String]?
    /// How long one transfer keeps resuming after network failures (WM IoT SDK's CONFIG_OTA_RETRY_TIMEOUT).
    public var transferRetryTimeout: Double = 300
    /// The site's root.json, installed into the data directory's `tuf/` when it has none.
    public var trustRoot: String?
    /// Gossip (UDP and TCP on one port); nil = this gateway stays out of the mesh.
    public var gossipListen: ListenAddress? = ListenAddress(host: "0.0.0.0", port: 7946)
    /// The IP address other gateways reach this one at (default: the listen address, or the
    /// first non-loopback interface address when listening on all).
    public var gossipAdvertise: String?
    /// Static peers (HOST:PORT) to join where multicast does not reach.
    public var gossipJoin: [String] = []
    /// The site keyring (created with a new site key on first start when missing).
    public var siteKeyring: String?
    /// Find peers by mDNS/DNS-SD through avahi-daemon.
    public var discoveryMDNS = true
    /// Find push devices on the device segments by mDNS/DNS-SD (``DeviceDiscoveryService``).
    public var deviceDiscoveryMDNS = true
    /// The site trust file (admin keys and m-of-n threshold) that rollout commands must satisfy.
    public var siteTrust: String?
    /// Pushes to push devices this gateway runs at once (all rollouts together), and per
    /// network segment; a rollout's own `concurrency` applies too (the smaller wins).
    public var pushMaxConcurrent = 32
    public var pushMaxPerSegment = 16
    /// Seconds a push retries a device it cannot reach before the device took the image.
    public var pushRetryTimeout: Double = 30
    /// Seconds one push may take, from the first request to the confirmed version.
    public var pushDeadline: Double = 600
    /// Each adapter's own retry policy: per-family overrides of ``pushRetryTimeout`` and
    /// ``pushDeadline`` (family → seconds), from `push.retryTimeout: 30s,arduino-ota=2m` or
    /// `push: {arduino-ota: {retryTimeout: 2m}}`.
    public var pushRetryTimeoutByFamily: [DeviceFamily: Double] = [:]
    public var pushDeadlineByFamily: [DeviceFamily: Double] = [:]
    /// Called (POST, JSON) when a rollout is approved, halts, completes or is aborted.
    public var alertsWebhook: String?
    /// `open`: every device that asks is updated; `known`: only devices an admin registered or
    /// accepted (`otamesh device add`, `otamesh device accept`), the others wait as pending.
    public var deviceAdmission: DeviceAdmission = .open
    /// Caps on devices no admin vouched for (`devices.maxUnknown`, `devices.maxUnknownPerAddress`).
    public var unknownDeviceLimits = DeviceRegistry.UnknownLimits()
    /// Accept secret files (admin tokens, the site keyring, device secrets) that give group or
    /// others access; by default they are refused (``PrivateFile``).
    public var insecurePermissions = false
    /// hawkBit DDI on the device listeners (`ddi.*`).
    public var ddi = DDISettings()

    /// The push limits the rollout engine holds every rollout's pushes to.
    public var pushLimits: PushQueue.Limits { PushQueue.Limits(maxConcurrent: pushMaxConcurrent, maxPerSegment: pushMaxPerSegment) }

    /// One push family's timing: its retry timeout and deadline (the family's own, else the
    /// gateway's), the rest default.
    public func pushTiming(family: DeviceFamily) -> PushTiming {
        var timing = PushTiming()
        timing.retry.retryTimeout = pushRetryTimeoutByFamily[family] ?? pushRetryTimeout
        timing.deadline = Int64((pushDeadlineByFamily[family] ?? pushDeadline) * 1000)
        return timing
    }

    /// The keyring file: configured, or `keys/site.keyring` in the data directory.
    public var siteKeyringPath: String { siteKeyring ?? "\(dataDirectory)/keys/site.keyring" }

    /// The site trust file: configured, or `keys/site-trust.json` in the data directory (rollouts
    /// are off while there is none).
    public var siteTrustPath: String { siteTrust ?? "\(dataDirectory)/keys/site-trust.json" }
    /// The admin token file: configured, or `keys/admin.token` in the data directory.
    public var adminTokenPath: String { adminTokenFile ?? "\(dataDirectory)/keys/admin.token" }
    /// The read-only token file: configured, or `keys/read.token` in the data directory.
    public var adminReadTokenPath: String { adminReadTokenFile ?? "\(dataDirectory)/keys/read.token" }
    /// Image bytes moved, saved across restarts (``TrafficTotals``).
    public var trafficPath: String { "\(dataDirectory)/traffic.json" }

    /// The proxies for upstream transfers: the environment's, overridden by the configuration.
    public func proxySettings(environment: [String: String]) -> ProxySettings {
        var settings = ProxySettings.from(environment: environment)
        if let proxy = upstreamProxy.flatMap(ProxySettings.parse) {
            settings.http = proxy
            settings.https = proxy
        }
        if let noProxy = upstreamNoProxy { settings.noProxy = noProxy }
        return settings
    }

    public init(nodeName: String = AgentConfiguration.hostName()) {
        self.nodeName = nodeName
    }

    /// Applies a YAML config file's contents. Unknown keys are errors (a typo must not be
    /// silently ignored).
    public mutating func apply(yaml text: String, source: String) throws(ConfigurationError) {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw .invalid(source: source, key: "-", reason: "not valid YAML: \(error)")
        }
        guard let node else { return }
        guard let mapping = node.mapping else {
            throw .invalid(source: source, key: "-", reason: "top level must be a mapping of keys")
        }
        var flat: [(String, String)] = []
        try Self.flatten(mapping, prefix: "", source: source, into: &flat)
        for (key, value) in flat { try set(key, value, source: "\(source): \(key)") }
    }

    /// Applies `OTAMESH_*` variables from an environment dictionary.
    public mutating func apply(environment: [String: String]) throws(ConfigurationError) {
        for entry in Self.keys {
            if let value = environment[entry.env], !value.isEmpty { try set(entry.file, value, source: entry.env) }
        }
    }

    /// Keys spelled otherwise before every key was lowerCamelCase: still accepted, with a
    /// warning (``deprecations``).
    public static let renamedKeys: [String: String] = [
        "admin.token_file": "admin.tokenFile", "admin.read_token_file": "admin.readTokenFile",
        "push.max_concurrent": "push.maxConcurrent", "push.max_per_segment": "push.maxPerSegment",
        "push.retry_timeout": "push.retryTimeout",
    ]

    /// One warning per old key spelling that was used: `SOURCE: OLD is now spelled NEW`.
    public private(set) var deprecations: [String] = []

    /// The current spelling of `key` (nested per-family keys included), and whether it was an old one.
    static func currentSpelling(_ key: String) -> String? {
        if let renamed = renamedKeys[key] { return renamed }
        let parts = key.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "push", parts[2] == "retry_timeout" { return "push.\(parts[1]).retryTimeout" }
        return nil
    }

    /// Sets one key (`cache.quota`) from text.
    public mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        if let current = Self.currentSpelling(key) {
            let place = source.hasSuffix(key) ? source : "\(source): \(key)"
            let warning = "\(place) is now spelled \(current); the old spelling still works"
            if !deprecations.contains(warning) { deprecations.append(warning) }
            return try set(current, value, source: source)
        }
        switch key {
        case "dataDir": dataDirectory = value
        case "nodeName": nodeName = value
        case "admin.listen":
            guard let address = ListenAddress(value) else {
                throw .invalid(source: source, key: key, reason: "expected HOST:PORT, got \(value)")
            }
            adminListen = address
        case "admin.tokenFile":
            guard !value.isEmpty else { throw .invalid(source: source, key: key, reason: "expected a file path") }
            adminTokenFile = value
        case "admin.readTokenFile":
            guard !value.isEmpty else { throw .invalid(source: source, key: key, reason: "expected a file path") }
            adminReadTokenFile = value
        case "device.listen":
            guard let address = ListenAddress(value) else {
                throw .invalid(source: source, key: key, reason: "expected HOST:PORT, got \(value)")
            }
            deviceListen = address
        case "device.tlsListen":
            if value.lowercased() == "off" { deviceTLSListen = nil; break }
            guard let address = ListenAddress(value) else {
                throw .invalid(source: source, key: key, reason: "expected HOST:PORT or off, got \(value)")
            }
            deviceTLSListen = address
        case "device.idleTimeout", "admin.idleTimeout":
            guard let seconds = Self.parseDuration(value), seconds >= 1 else {
                throw .invalid(source: source, key: key, reason: "expected a duration of at least 1s like 30s, 2m, got \(value)")
            }
            if key == "device.idleTimeout" { deviceIdleTimeout = seconds } else { adminIdleTimeout = seconds }
        case "devices.maxUnknown", "devices.maxUnknownPerAddress":
            guard let count = Int(value), (1...10_000_000).contains(count) else {
                throw .invalid(source: source, key: key, reason: "expected a number of devices from 1 to 10000000, got \(value)")
            }
            if key == "devices.maxUnknown" { unknownDeviceLimits.total = count } else { unknownDeviceLimits.perAddress = count }
        case "device.maxConnections", "device.maxConnectionsPerAddress":
            guard let count = Int(value), (1...1_000_000).contains(count) else {
                throw .invalid(source: source, key: key, reason: "expected a number of connections from 1 to 1000000, got \(value)")
            }
            if key == "device.maxConnections" { deviceMaxConnections = count } else { deviceMaxConnectionsPerAddress = count }
        case "cache.quota":
            if value.lowercased() == "unlimited" {
                cacheQuotaBytes = nil
            } else {
                guard let bytes = Self.parseSize(value) else {
                    throw .invalid(source: source, key: key, reason: "expected a size like 512MiB, 8GiB or unlimited, got \(value)")
                }
                cacheQuotaBytes = bytes
            }
        case "cache.partialMaxAge":
            guard let seconds = Self.parseDuration(value) else {
                throw .invalid(source: source, key: key, reason: "expected a duration like 30m, 12h or 7d, got \(value)")
            }
            partialMaxAge = seconds
        case "log.level":
            let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
            guard levels.contains(value.lowercased()) else {
                throw .invalid(source: source, key: key, reason: "expected one of \(levels.joined(separator: ", ")), got \(value)")
            }
            logLevel = value.lowercased()
        case "log.format":
            guard let format = LogFormat(rawValue: value.lowercased()) else {
                throw .invalid(source: source, key: key, reason: "expected text or json, got \(value)")
            }
            logFormat = format
        case "upstream.metadataURL": upstreamMetadataURL = try Self.url(value, key: key, source: source)
        case "upstream.targetsURL": upstreamTargetsURL = try Self.url(value, key: key, source: source)
        case "upstream.targets": upstreamTargets = value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        case "upstream.interval":
            guard let seconds = Self.parseDuration(value), seconds >= 1 else {
                throw .invalid(source: source, key: key, reason: "expected a duration of at least 1s like 30s, 5m, got \(value)")
            }
            upstreamInterval = seconds
        case "upstream.fetchers":
            guard let count = Int(value), (0...64).contains(count) else {
                throw .invalid(source: source, key: key, reason: "expected 0 (every gateway fetches for itself) to 64, got \(value)")
            }
            upstreamPlan.fetchers = count
        case "upstream.handover":
            guard let seconds = Self.parseDuration(value), seconds >= 1 else {
                throw .invalid(source: source, key: key, reason: "expected a duration of at least 1s like 90s, 10m, got \(value)")
            }
            upstreamPlan.handoverMS = Int64(seconds * 1000)
        case "upstream.proxy":
            guard ProxySettings.parse(value) != nil else {
                throw .invalid(source: source, key: key, reason: "expected an HTTP proxy like http://proxy:3128, got \(value)")
            }
            upstreamProxy = value
        case "upstream.noProxy": upstreamNoProxy = ProxySettings.parseList(value)
        case "transfer.retryTimeout":
            guard let seconds = Self.parseDuration(value), seconds >= 1 else {
                throw .invalid(source: source, key: key, reason: "expected a duration of at least 1s like 90s, 5m, got \(value)")
            }
            transferRetryTimeout = seconds
        case "trust.root": trustRoot = value
        case "gossip.listen":
            if value.lowercased() == "off" { gossipListen = nil; break }
            guard let address = ListenAddress(value) else {
                throw .invalid(source: source, key: key, reason: "expected HOST:PORT or off, got \(value)")
            }
            gossipListen = address
        case "gossip.advertise":
            guard value.utf8.allSatisfy({ $0 < 128 }), value.contains(".") || value.contains(":") else {
                throw .invalid(source: source, key: key, reason: "expected an IP address, got \(value)")
            }
            gossipAdvertise = value
        case "gossip.join":
            let peers = value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
            for peer in peers where ListenAddress(peer).map({ $0.port == 0 }) ?? true {
                throw .invalid(source: source, key: key, reason: "expected HOST:PORT peers, got \(peer)")
            }
            gossipJoin = peers
        case "site.keyring": siteKeyring = value
        case "alerts.webhook": alertsWebhook = try Self.url(value, key: key, source: source)
        case "devices.admission":
            guard let admission = DeviceAdmission(rawValue: value.lowercased()) else {
                throw .invalid(source: source, key: key, reason: "expected open or known, got \(value)")
            }
            deviceAdmission = admission
        case "site.trust": siteTrust = value
        case "push.maxConcurrent", "push.maxPerSegment":
            guard let number = Int(value.trimmingWhitespace()), (1...10_000).contains(number) else {
                throw .invalid(source: source, key: key, reason: "expected a whole number 1…10000, got \(value)")
            }
            if key == "push.maxConcurrent" { pushMaxConcurrent = number } else { pushMaxPerSegment = number }
        case "push.retryTimeout", "push.deadline":
            let minimum: Double = key == "push.deadline" ? 1 : 0
            let (all, families) = try Self.familyDurations(value, minimum: minimum, key: key, source: source)
            if key == "push.deadline" {
                if let all { pushDeadline = all }
                pushDeadlineByFamily.merge(families) { _, new in new }
            } else {
                if let all { pushRetryTimeout = all }
                pushRetryTimeoutByFamily.merge(families) { _, new in new }
            }
        case "discovery":
            switch value.lowercased() {
            case "mdns": discoveryMDNS = true
            case "off": discoveryMDNS = false
            default: throw .invalid(source: source, key: key, reason: "expected mdns or off, got \(value)")
            }
        case "security.insecurePermissions", "admin.insecureClearText":
            let flag: Bool
            switch value.lowercased() {
            case "true", "yes", "on", "1": flag = true
            case "false", "no", "off", "0": flag = false
            default: throw .invalid(source: source, key: key, reason: "expected true or false, got \(value)")
            }
            if key == "admin.insecureClearText" { adminInsecureClearText = flag } else { insecurePermissions = flag }
        case "admin.tls":
            guard let mode = AdminTLSMode(rawValue: value.lowercased()) else {
                throw .invalid(source: source, key: key, reason: "expected auto, on or off, got \(value)")
            }
            adminTLS = mode
        case "devices.discovery":
            switch value.lowercased() {
            case "mdns": deviceDiscoveryMDNS = true
            case "off": deviceDiscoveryMDNS = false
            default: throw .invalid(source: source, key: key, reason: "expected mdns or off, got \(value)")
            }
        case _ where key.hasPrefix("ddi."):
            try ddi.set(key, value, source: source)
        default:
            // The nested file form of a family's own value: push.arduino-ota.retryTimeout.
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 3, parts[0] == "push", parts[2] == "retryTimeout" || parts[2] == "deadline" {
                guard !value.contains(","), !value.contains("=") else {
                    throw .invalid(source: source, key: key, reason: "expected one duration like 2m, got \(value)")
                }
                return try set("push.\(parts[2])", "\(parts[1])=\(value)", source: source)
            }
            throw .unknownKey(source: source, key: key)
        }
    }

    /// `30s`, `arduino-ota=2m` or `30s,arduino-ota=2m,fetch-url=5m`: the value for every family
    /// (nil when not given) and the families' own. All or nothing: one bad item changes nothing.
    static func familyDurations(
        _ value: String, minimum: Double, key: String, source: String
    ) throws(ConfigurationError)
        -> (Double?, [DeviceFamily: Double])
    {
        var all: Double?
        var families: [DeviceFamily: Double] = [:]
        let items = value.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw .invalid(source: source, key: key, reason: "expected a duration like 30s or 2m, got \(value)") }
        for item in items {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard let seconds = Self.parseDuration(pair.last ?? ""), seconds >= minimum else {
                let least = minimum > 0 ? " of at least \(Int(minimum))s" : ""
                throw .invalid(source: source, key: key, reason: "expected a duration\(least) like 30s or 2m, got \(item)")
            }
            guard pair.count == 2 else {
                guard all == nil else { throw .invalid(source: source, key: key, reason: "two durations for every family in \(value)") }
                all = seconds
                continue
            }
            guard let family = DeviceFamily(known: pair[0]), family.isPush else {
                throw .invalid(source: source, key: key, reason: "unknown push family \(pair[0]) (\(DeviceFamily.names(DeviceFamily.push)))")
            }
            guard families[family] == nil else { throw .invalid(source: source, key: key, reason: "\(pair[0]) given twice in \(value)") }
            families[family] = seconds
        }
        return (all, families)
    }

    static func url(_ value: String, key: String, source: String) throws(ConfigurationError) -> String {
        guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
            throw .invalid(source: source, key: key, reason: "expected an http:// or https:// URL, got \(value)")
        }
        return value
    }

    private static func flatten(_ mapping: Node.Mapping, prefix: String, source: String, into out: inout [(String, String)]) throws(ConfigurationError) {
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { throw .invalid(source: source, key: prefix, reason: "keys must be strings") }
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let nested = valueNode.mapping {
                try flatten(nested, prefix: path, source: source, into: &out)
            } else if let scalar = valueNode.scalar {
                out.append((path, scalar.string))
            } else {
                throw .invalid(source: source, key: path, reason: "expected a single value")
            }
        }
    }

    /// Parses `4096`, `512KiB`, `64MiB`, `8GiB`, `1TiB` (also `K/M/G/T`, `KB/MB/GB` as powers of 1000).
    public static func parseSize(_ text: String) -> Int64? {
        let trimmed = text.trimmingWhitespace()
        let digits = trimmed.prefix { $0.isNumber }
        guard !digits.isEmpty, let number = Int64(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingWhitespace().lowercased()
        let multipliers: [String: Int64] = [
            "": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
            "t": 1 << 40, "tib": 1 << 40, "kb": 1_000, "mb": 1_000_000, "gb": 1_000_000_000, "tb": 1_000_000_000_000,
        ]
        guard let multiplier = multipliers[unit] else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// Parses `90`, `90s`, `30m`, `12h`, `7d` into seconds.
    public static func parseDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingWhitespace()
        let digits = trimmed.prefix { $0.isNumber }
        guard !digits.isEmpty, let number = Double(digits) else { return nil }
        let units: [String: Double] = ["": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = units[String(trimmed.dropFirst(digits.count))] else { return nil }
        return number * unit
    }

    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "otamesh" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
