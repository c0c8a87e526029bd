import OTAMeshDevices

/// The hawkBit DDI answer on the device listeners (docs/devices.md, "Linux devices (hawkBit DDI)").
public struct DDISettings: Sendable, Equatable {
    /// How a DDI device proves who it is.
    public enum Authentication: String, Sendable, Equatable, CaseIterable {
        /// Its own `TargetToken` (`otamesh device add --family ddi` issues it) or the site's
        /// `GatewayToken`.
        case known
        /// As `known`, and a device the gateway does not know yet is registered with the
        /// `TargetToken` it first presents (trust on first use).
        case enroll
        /// No token needed (a closed lab network only).
        case anonymous
    }

    /// Answer DDI at all (`ddi.enabled: off` turns the routes off: 404).
    public var enabled = true
    /// The tenant in every DDI path (`/{tenant}/controller/v1/…`), compared case-insensitively.
    public var tenant = "DEFAULT"
    /// Seconds between polls the gateway asks for when nothing is to do (`config.polling.sleep`).
    public var pollInterval = 300
    /// Seconds between polls while an action is open (the device reports and confirms sooner).
    public var activePollInterval = 30
    public var authentication = Authentication.known
    /// A file holding the site's `GatewayToken` (the same on every gateway); none: not accepted.
    public var gatewayTokenFile: String?

    public init() {}

    /// Applies one `ddi.*` key.
    mutating func set(_ key: String, _ value: String, source: String) throws(ConfigurationError) {
        switch key {
        case "ddi.enabled":
            switch value.lowercased() {
            case "on", "true", "yes", "1": enabled = true
            case "off", "false", "no", "0": enabled = false
            default: throw .invalid(source: source, key: key, reason: "expected on or off, got \(value)")
            }
        case "ddi.tenant":
            guard DDI.isName(value) else {
                throw .invalid(source: source, key: key, reason: "expected 1…64 letters, digits, '.', '_', '-' or ':', got \(value)")
            }
            tenant = value
        case "ddi.pollInterval", "ddi.activePollInterval":
            guard let seconds = AgentConfiguration.parseDuration(value), seconds >= 1, seconds <= 86_399 else {
                throw .invalid(source: source, key: key, reason: "expected a duration from 1s to 23h59m59s like 5m, got \(value)")
            }
            if key == "ddi.pollInterval" { pollInterval = Int(seconds) } else { activePollInterval = Int(seconds) }
        case "ddi.authentication":
            guard let mode = Authentication(rawValue: value.lowercased()) else {
                throw .invalid(
                    source: source, key: key, reason: "expected \(Authentication.allCases.map(\.rawValue).joined(separator: ", ")), got \(value)")
            }
            authentication = mode
        case "ddi.gatewayTokenFile":
            gatewayTokenFile = value
        default:
            throw .unknownKey(source: source, key: key)
        }
    }

    /// The documented keys.
    static let keys: [(file: String, env: String, flag: String, meaning: String)] = [
        ("ddi.enabled", "OTAMESH_DDI_ENABLED", "--ddi-enabled", "answer hawkBit DDI clients (SWUpdate, RAUC) on the device listeners: on or off (default on)"),
        ("ddi.tenant", "OTAMESH_DDI_TENANT", "--ddi-tenant", "the DDI tenant in device URLs (default DEFAULT)"),
        ("ddi.pollInterval", "OTAMESH_DDI_POLL_INTERVAL", "--ddi-poll-interval", "DDI polling interval asked of idle devices (default 5m)"),
        (
            "ddi.activePollInterval", "OTAMESH_DDI_ACTIVE_POLL_INTERVAL", "--ddi-active-poll-interval",
            "DDI polling interval while a device has an open action (default 30s)"
        ),
        (
            "ddi.authentication", "OTAMESH_DDI_AUTHENTICATION", "--ddi-authentication",
            "known (TargetToken from otamesh device add --family ddi, or the GatewayToken), enroll (also record the first TargetToken of a new device) or anonymous (default known)"
        ),
        ("ddi.gatewayTokenFile", "OTAMESH_DDI_GATEWAY_TOKEN_FILE", "--ddi-gateway-token-file", "file with the site's DDI GatewayToken (default: none)"),
    ]
}
