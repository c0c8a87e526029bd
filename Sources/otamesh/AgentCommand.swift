import ArgumentParser
import Foundation
import Logging
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTrust

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the gateway daemon: device serving, admin API and /metrics, gossip mesh, upstream and peer sync.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Admin API and /metrics listen address HOST:PORT (default 127.0.0.1:8071; port 0 = any free port).")
    var adminListen: String?

    @Option(help: "Admin API bearer token file, role admin (default DATA/keys/admin.token; created 0600 with a random token if missing).")
    var adminTokenFile: String?

    @Option(help: "Admin API bearer token file, role read-only: GET/HEAD only (default DATA/keys/read.token; created if missing).")
    var adminReadTokenFile: String?

    @Option(help: "Device HTTP listen address HOST:PORT (default 0.0.0.0:8070; port 0 = any free port).")
    var deviceListen: String?

    @Option(help: "Device HTTPS listen address HOST:PORT, or off (default 0.0.0.0:8443, served once `otamesh keys site-ca` ran).")
    var deviceTlsListen: String?

    @Option(help: "Close device connections that send nothing this long, never during a download (default 2m).")
    var deviceIdleTimeout: String?

    @Option(help: "Close admin API connections that stay idle this long (default 1m).")
    var adminIdleTimeout: String?

    @Option(help: "Admin API over HTTPS with the site CA's gateway certificate: auto (when --admin-listen is not loopback), on or off (default auto).")
    var adminTls: String?

    @Flag(help: "Serve the admin API in clear text on a non-loopback address anyway (its tokens cross the network readable; refused otherwise).")
    var adminInsecureClearText = false

    @Option(help: "Device connections at once; over it the oldest idle one is closed (default: from the open-files limit).")
    var deviceMaxConnections: String?

    @Option(help: "Devices kept that no admin added, accepted, assigned or tagged; over it the oldest is forgotten (default 20000).")
    var devicesMaxUnknown: String?

    @Option(help: "The same, per client address (default 1000).")
    var devicesMaxUnknownPerAddress: String?

    @Option(help: "Device connections at once from one address (default: a quarter of --device-max-connections, at most 256).")
    var deviceMaxConnectionsPerAddress: String?

    @Option(help: "Cache quota: bytes, 512MiB, 8GiB or unlimited (default 8GiB).")
    var cacheQuota: String?

    @Option(help: "Drop partial downloads older than this: 30m, 12h, 7d (default 7d).")
    var partialMaxAge: String?

    @Option(help: "This gateway's name (default: host name).")
    var nodeName: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    @Option(help: "Log format: text or json (default text).")
    var logFormat: String?

    @Option(help: "Upstream TUF metadata base URL (enables upstream sync).")
    var upstreamMetadataUrl: String?

    @Option(help: "Upstream TUF targets base URL.")
    var upstreamTargetsUrl: String?

    @Option(help: "Comma-separated target path globs to fetch (default: all top-level targets).")
    var upstreamTargets: String?

    @Option(help: "Time between upstream polls, e.g. 30s, 5m (default 5m).")
    var upstreamInterval: String?

    @Option(help: "How many upstream-connected gateways fetch each new image for the site; 0: each its own (default 1).")
    var upstreamFetchers: String?

    @Option(help: "One more gateway fetches an image from upstream each time this passes without it in the mesh (default 10m).")
    var upstreamHandover: String?

    @Option(help: "HTTP proxy for upstream transfers, http://HOST:PORT (default: $HTTP_PROXY / $HTTPS_PROXY).")
    var upstreamProxy: String?

    @Option(help: "Comma-separated hosts/domains that bypass the proxy (default: $NO_PROXY).")
    var upstreamNoProxy: String?

    @Option(help: "Keep resuming a download after network failures this long, e.g. 90s, 5m (default 5m).")
    var transferRetryTimeout: String?

    @Option(help: "The site's root.json (installed into the data dir's tuf/ if none is trusted yet).")
    var trustRoot: String?

    @Option(help: "Gossip UDP+TCP listen address HOST:PORT, or off (default 0.0.0.0:7946; port 0 = any free port).")
    var gossipListen: String?

    @Option(help: "IP address peers reach this gateway at (default: the listen address, or the first non-loopback interface).")
    var gossipAdvertise: String?

    @Option(help: "A static peer HOST:PORT to join, where multicast does not reach (repeatable).")
    var join: [String] = []

    @Option(help: "Site keyring file (default DATA/keys/site.keyring; a new site is created there if missing).")
    var siteKeyring: String?

    @Option(help: "Peer discovery: mdns (through avahi-daemon) or off (default mdns).")
    var discovery: String?
    @Option(name: .customLong("device-discovery"), help: "Push-device discovery: mdns (through avahi-daemon) or off (default mdns).")
    var deviceDiscovery: String?

    @Option(help: "Site trust file: the admin keys rollouts must be signed with (default DATA/keys/site-trust.json).")
    var siteTrust: String?

    @Option(help: "Pushes to push devices at once, all rollouts together (default 32).")
    var pushMaxConcurrent: String?

    @Option(help: "Pushes at once per network segment (default 16).")
    var pushMaxPerSegment: String?

    @Option(help: "URL to POST a JSON event to when a rollout is approved, halts, completes or is aborted.")
    var alertsWebhook: String?

    @Option(name: .customLong("device-admission"), help: "open (every device is updated) or known (only devices an admin added or accepted; default open).")
    var deviceAdmission: String?

    @Option(help: "Retry a push device that cannot be reached this long before it took the image, e.g. 30s (default 30s).")
    var pushRetryTimeout: String?

    @Option(help: "One push's whole time, to the confirmed version, e.g. 10m (default 10m).")
    var pushDeadline: String?

    @Flag(help: "Accept secret files (admin tokens, the site keyring, device secrets) that group or others can read.")
    var insecurePermissions = false

    @Option(name: .customLong("ddi-enabled"), help: "Answer hawkBit DDI clients (SWUpdate, RAUC): on or off (default on).")
    var ddiEnabled: String?

    @Option(name: .customLong("ddi-tenant"), help: "The DDI tenant in device URLs (default DEFAULT).")
    var ddiTenant: String?

    @Option(name: .customLong("ddi-poll-interval"), help: "DDI polling interval asked of idle devices, e.g. 5m (default 5m).")
    var ddiPollInterval: String?

    @Option(name: .customLong("ddi-active-poll-interval"), help: "DDI polling interval while a device has an open action (default 30s).")
    var ddiActivePollInterval: String?

    @Option(name: .customLong("ddi-authentication"), help: "known, enroll or anonymous (default known; docs/devices.md).")
    var ddiAuthentication: String?

    @Option(name: .customLong("ddi-gateway-token-file"), help: "File with the site's DDI GatewayToken.")
    var ddiGatewayTokenFile: String?

    func run() async throws {
        let configuration = try options.load(
            command: "otamesh agent",
            extra: [
                ("security.insecurePermissions", insecurePermissions ? "true" : nil),
                ("admin.tls", adminTls), ("admin.insecureClearText", adminInsecureClearText ? "true" : nil),
                ("admin.listen", adminListen), ("admin.tokenFile", adminTokenFile), ("admin.readTokenFile", adminReadTokenFile),
                ("device.listen", deviceListen), ("device.tlsListen", deviceTlsListen), ("device.idleTimeout", deviceIdleTimeout),
                ("admin.idleTimeout", adminIdleTimeout),
                ("device.maxConnections", deviceMaxConnections), ("device.maxConnectionsPerAddress", deviceMaxConnectionsPerAddress),
                ("devices.maxUnknown", devicesMaxUnknown), ("devices.maxUnknownPerAddress", devicesMaxUnknownPerAddress),
                ("cache.quota", cacheQuota), ("cache.partialMaxAge", partialMaxAge),
                ("nodeName", nodeName), ("log.level", logLevel), ("log.format", logFormat),
                ("upstream.metadataURL", upstreamMetadataUrl), ("upstream.targetsURL", upstreamTargetsUrl),
                ("upstream.targets", upstreamTargets), ("upstream.interval", upstreamInterval), ("trust.root", trustRoot),
                ("upstream.fetchers", upstreamFetchers), ("upstream.handover", upstreamHandover),
                ("upstream.proxy", upstreamProxy), ("upstream.noProxy", upstreamNoProxy), ("transfer.retryTimeout", transferRetryTimeout),
                ("gossip.listen", gossipListen), ("gossip.advertise", gossipAdvertise), ("gossip.join", join.isEmpty ? nil : join.joined(separator: ",")),
                ("site.keyring", siteKeyring), ("discovery", discovery), ("devices.discovery", deviceDiscovery), ("site.trust", siteTrust),
                ("push.maxConcurrent", pushMaxConcurrent), ("push.maxPerSegment", pushMaxPerSegment),
                ("push.retryTimeout", pushRetryTimeout), ("push.deadline", pushDeadline),
                ("alerts.webhook", alertsWebhook), ("devices.admission", deviceAdmission),
                ("ddi.enabled", ddiEnabled), ("ddi.tenant", ddiTenant), ("ddi.pollInterval", ddiPollInterval),
                ("ddi.activePollInterval", ddiActivePollInterval), ("ddi.authentication", ddiAuthentication),
                ("ddi.gatewayTokenFile", ddiGatewayTokenFile),
            ])
        LogSetup.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        let registry = Agent.bootstrapMetrics()
        let logger = Logger(label: "otamesh.agent")
        let agent = Agent(configuration: configuration, registry: registry, logger: logger)
        let node = configuration.nodeName
        let adminToken = configuration.adminTokenPath
        try await reporting("otamesh agent") {
            do {
                try await run(agent, node: node, adminToken: adminToken)
            } catch let refused as AdminListenRefused {
                // A configuration that would expose the admin tokens: a usage error, like a bad value.
                Output.err("otamesh agent: \(refused)")
                throw ExitCode(2)
            }
        }
    }

    func run(_ agent: Agent, node: String, adminToken: String) async throws {
        try await agent.run { ready in
            let dir = URL(fileURLWithPath: ready.dataDirectory).standardizedFileURL.path
            Output.out("otamesh agent \(node) ready")
            Output.out("  device HTTP: \(ready.deviceURL)  (GET /v1/targets/PATH, /v1/blobs/sha256/HEX, /v1/devices/ID/update)")
            if let tls = ready.deviceTLSURL { Output.out("  device HTTPS: \(tls)  (site CA: otamesh keys site-ca --export-pem)") }
            let verify = ready.adminURL.hasPrefix("https://") ? "; HTTPS: verify with the site CA, DATA/keys/site-ca.pem or --ca FILE" : ""
            Output.out("  admin API + metrics: \(ready.adminURL)  (GET /metrics, /healthz; /api/v1/cache, /api/v1/members with a bearer token\(verify))")
            Output.out("  dashboard: \(ready.adminURL)/ui/  (sign in with the admin token, \(adminToken), or the read-only one)")
            if let gossip = ready.gossip { Output.out("  gossip: \(gossip)  (site \(ready.site ?? "?"); otamesh members)") }
            if let created = ready.keyringCreated {
                Output.out("  new site keyring: \(created)  (copy it to every gateway of this site: --site-keyring FILE)")
            }
            if !ready.hasTrustRoot {
                Output.out("  trust root: none  (no signed targets, nothing from peers, no rollouts: --trust-root FILE or otamesh import --root FILE)")
            }
            if let rollouts = ready.rollouts { Output.out("  rollouts: \(rollouts)") }
            if !ready.tokensCreated.isEmpty {
                let shown = ready.tokensCreated.map { "\($0) (\($0 == adminToken ? "admin" : "read-only"))" }
                Output.out("  new admin API tokens: \(shown.joined(separator: ", "))  (0600; send Authorization: Bearer TOKEN to /api/v1)")
            }
            if let upstream = ready.upstream { Output.out("  upstream sync: \(upstream)") }
            Output.out("  data dir: \(dir)  (\(ready.blobCount) blobs, \(ready.cacheBytes) bytes)")
        }
    }
}
