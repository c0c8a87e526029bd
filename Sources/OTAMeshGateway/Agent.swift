import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshDiscovery
import OTAMeshRollout
import OTAMeshStore
import OTAMeshTransfer
import OTAMeshTrust
import Prometheus
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The gateway daemon: opens the store, serves the admin API and `/metrics`, and runs
/// until SIGTERM/SIGINT, shutting down gracefully.
public struct Agent: Sendable {
    public let configuration: AgentConfiguration
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    /// The one wall clock every part of the agent reads dates from.
    let clock: WallClock

    /// Installs the Prometheus metrics backend; call once per process, before ``run(onReady:)``.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    public init(configuration: AgentConfiguration, registry: PrometheusCollectorRegistry, logger: Logger, clock: WallClock = .system) {
        self.clock = clock
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
    }

    /// What the agent prints when it is ready: where it serves and where it keeps data.
    public struct Ready: Sendable {
        public let adminURL: String
        public let deviceURL: String
        /// nil when HTTPS is off or this gateway has no certificate from the site CA yet.
        public let deviceTLSURL: String?
        public let dataDirectory: String
        public let blobCount: Int
        public let cacheBytes: Int64
        /// The upstream repository polled, if any.
        public let upstream: String?
        /// Where this gateway gossips (HOST:PORT), its site, and whether its keyring was just created.
        public let gossip: String?
        public let site: String?
        public let keyringCreated: String?
        /// Whether this gateway carries out rollouts, and under which site trust.
        public let rollouts: String?
        /// Admin API token files created on this start (admin first), empty when both existed.
        public let tokensCreated: [String]
        /// Whether a TUF root is trusted: without one a gateway serves no signed targets, takes
        /// nothing from peers and no part in rollouts.
        public let hasTrustRoot: Bool
    }

    /// Opens the store and serves until shutdown. `onReady` runs once the listener is bound.
    ///
    /// Start-up runs in three steps so that no failure leaves something half started: every file
    /// is read and checked first (``AgentStartup``), then the listeners are bound (a bind that
    /// fails closes those already bound), and only then do services start, under one service
    /// group that stops them all if one of them (the admin listener) cannot start.
    public func run(onReady: @escaping @Sendable (Ready) -> Void) async throws {
        let fileLimit = Self.raiseFileLimit(logger: logger)
        let limits = ConnectionLimits.derived(
            fileLimit: fileLimit, deviceTotal: configuration.deviceMaxConnections,
            devicePerAddress: configuration.deviceMaxConnectionsPerAddress)
        logger.debug(
            "connection caps",
            metadata: [
                "limit.files": "\(fileLimit)", "limit.device": "\(limits.device.total) (\(limits.device.perAddress) per address)",
                "limit.admin": "\(limits.admin.total)", "limit.gossip": "\(limits.gossip.total)",
            ])
        let gates = Gates(
            device: ConnectionGate(listener: "device", limits: limits.device, logger: logger),
            admin: ConnectionGate(listener: "admin", limits: limits.admin, logger: logger),
            gossip: ConnectionGate(listener: "gossip", limits: limits.gossip, logger: logger))
        let startup = try AgentStartup.load(configuration, logger: logger, clock: clock)
        let listeners = try await bindListeners(startup, gates: gates)
        let services: [any Service]
        let totals: (count: Int, bytes: Int64)
        do {
            if startup.keyringIsNew, let keyring = startup.keyring { try keyring.save(configuration.siteKeyringPath) }
            services = try makeServices(startup, listeners)
            totals = try startup.store.totals()
        } catch {
            await listeners.close()
            throw error
        }
        let info = Gauge(label: "otamesh_agent_info", dimensions: [("node", configuration.nodeName)])
        info.record(1)
        let gossip = listeners.mesh.map { "\($0.me.host.contains(":") ? "[\($0.me.host)]" : $0.me.host):\($0.me.port)" }
        let site = listeners.mesh?.view().site
        let createdKeyring = startup.keyringIsNew ? configuration.siteKeyringPath : nil
        let rolloutLine = listeners.mesh == nil ? nil : rolloutsLine(startup)
        let dataDirectory = configuration.dataDirectory
        let upstream = configuration.upstreamMetadataURL
        let deviceURL = listeners.deviceURL
        let deviceTLSURL = listeners.deviceTLSURL
        let tokensCreated = startup.tokensCreated
        let hasTrustRoot = startup.hasTrustRoot
        let adminStarted = NIOLockedValueBox(false)
        // An idle admin connection is closed: without it, idle sockets piled up on this port forever.
        // Connections over the admin cap shed the oldest idle one (``ConnectionGate``); with TLS
        // the gate sits behind the TLS handler, counting each connection all the same.
        let http1 = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: [ConnectionGateHandler(gate: gates.admin)],
                idleTimeout: .milliseconds(Int64(configuration.adminIdleTimeout * 1000))))
        let server: HTTPServerBuilder
        do {
            server = try startup.adminTLS.map { try HTTPServerBuilder.tls(http1, tlsConfiguration: $0) } ?? http1
        } catch {
            await listeners.close()
            throw ListenError(key: "admin.listen", address: configuration.adminListen, reason: "cannot set up TLS: \(error)")
        }
        let scheme = startup.adminTLS == nil ? "http" : "https"
        let app = Application(
            responder: HeadAsGet(inner: listeners.router.buildResponder()),
            server: server,
            configuration: .init(
                address: .hostname(configuration.adminListen.host, port: configuration.adminListen.port),
                serverName: "otamesh"),
            onServerRunning: { channel in
                adminStarted.withLockedValue { $0 = true }
                let port = channel.localAddress?.port ?? 0
                let host = channel.localAddress?.ipAddress ?? "?"
                let shown = host.contains(":") ? "[\(host)]" : host
                AdminAddress.record(host: host, port: port, scheme: scheme, dataDirectory: dataDirectory)
                onReady(
                    Ready(
                        adminURL: "\(scheme)://\(shown):\(port)", deviceURL: deviceURL, deviceTLSURL: deviceTLSURL, dataDirectory: dataDirectory,
                        blobCount: totals.count, cacheBytes: totals.bytes, upstream: upstream, gossip: gossip, site: site,
                        keyringCreated: createdKeyring, rollouts: rolloutLine, tokensCreated: tokensCreated,
                        hasTrustRoot: hasTrustRoot))
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as IOError where !adminStarted.withLockedValue({ $0 }) {
            // The admin listener binds inside the group: its failure ends the group (the others
            // shut down) and is reported like the other listeners'.
            throw ListenError(
                key: "admin.listen", address: configuration.adminListen,
                reason: "\(String(cString: strerror(error.errnoCode))) (errno \(error.errnoCode))")
        }
    }

    /// What the ready banner says about rollouts.
    func rolloutsLine(_ startup: AgentStartup) -> String {
        let path = configuration.siteTrustPath
        guard let trust = startup.siteTrust else { return "off: no site trust file at \(path) (otamesh keys site-trust, then restart)" }
        guard startup.hasTrustRoot else {
            return "off: no trusted TUF root in \(startup.tufDirectory) (start once with --trust-root FILE, or otamesh import --root FILE)"
        }
        return "site \(trust.site), \(trust.threshold) of \(trust.admins.count) admin keys (\(path); otamesh rollout)"
    }

    /// The connection caps of the listeners (``ConnectionGate``).
    struct Gates {
        var device: ConnectionGate
        var admin: ConnectionGate
        var gossip: ConnectionGate
    }

    /// The sockets of a start, bound; ``close()`` releases them when the start fails after all.
    struct Listeners {
        var device: [any Channel] = []
        var mesh: Mesh?
        var deviceURL = ""
        var deviceTLSURL: String?
        var router: Router<AdminRequestContext>
        var meshBox: NIOLockedValueBox<Mesh?>
        var engineBox: NIOLockedValueBox<RolloutEngine?>
        var api: DeviceAPI
        /// What the gateway trusts and holds; told of every change (``ReleaseCatalog``).
        var releases: ReleaseCatalog
        /// Image bytes moved (served, from peers, from upstream), for the dashboard.
        var traffic = TrafficTotals()

        func close() async {
            for channel in device { try? await channel.close() }
            await mesh?.close()
        }
    }

    /// Binds the device listeners and the gossip port; on any failure closes what it bound.
    func bindListeners(_ startup: AgentStartup, gates: Gates) async throws -> Listeners {
        let meshBox = NIOLockedValueBox<Mesh?>(nil)
        let releases = ReleaseCatalog(store: startup.store, tufDirectory: startup.tufDirectory, initial: startup.catalog, logger: logger)
        let engineBox = NIOLockedValueBox<RolloutEngine?>(nil)
        let name = configuration.nodeName
        let rolloutRoutes = RolloutRoutes(
            engine: engineBox, store: startup.store, tufDirectory: startup.tufDirectory, gateway: name,
            siteDevices: { [registry = startup.registry] in
                SiteRoutes.siteDevices(gateway: name, registry: registry, mesh: meshBox.withLockedValue { $0 })
            })
        let secrets = DeviceSecretStore(
            path: DeviceSecretStore.path(dataDirectory: configuration.dataDirectory), allowOpenPermissions: configuration.insecurePermissions)
        let changes = DeviceChanges(
            registry: startup.registry,
            secrets: secrets,
            targets: { [releases] in DeviceChanges.targets(releases.current) }, admission: configuration.deviceAdmission,
            dataDirectory: configuration.dataDirectory, clock: clock,
            apps: { [store = startup.store, tuf = startup.tufDirectory] in try DeviceChanges.apps(tufDirectory: tuf, store: store) },
            siteSettings: { id in meshBox.withLockedValue { $0 }?.siteSettings(of: id) })
        let siteRoutes = SiteRoutes(
            registry: startup.registry, mesh: meshBox, gateway: name,
            store: startup.store, tufDirectory: startup.tufDirectory, clock: clock, releases: releases, changes: changes)
        // Site admin keys sign requests too, checked against the site trust file this gateway loaded.
        let signatures = SignedRequestGuard(trust: { [trust = startup.siteTrust] in trust }, clock: { [clock] in clock.now().wholeSeconds })
        let dashboard = DashboardRoutes(
            tokens: startup.tokens,
            snapshot: { [registry = startup.registry] in
                let mesh = meshBox.withLockedValue { $0 }
                let engine = engineBox.withLockedValue { $0 }
                return DashboardSnapshot.make(
                    gateway: name,
                    site: engine.map { SiteInfo(site: $0.trust.site, threshold: $0.trust.threshold, admins: $0.trust.admins.keys.sorted(), gateway: name) },
                    mesh: mesh?.view(), siteDevices: SiteRoutes.siteDevices(gateway: name, registry: registry, mesh: mesh), local: registry.all(),
                    catalog: releases.current, rollouts: engine?.statuses() ?? [])
            },
            rollout: { id in engineBox.withLockedValue { $0 }?.status(id, outcomes: true) })
        let router = AdminRoutes(
            store: startup.store, registry: registry, nodeName: configuration.nodeName, mesh: meshBox, tokens: startup.tokens,
            signatures: signatures, routeSets: [rolloutRoutes, siteRoutes, dashboard]
        ).router()
        let configurations = DeviceConfigurations(
            registry: startup.registry, secrets: secrets, releases: releases, store: startup.store, tufDirectory: startup.tufDirectory,
            dataDirectory: configuration.dataDirectory, siteSettings: { id in meshBox.withLockedValue { $0 }?.siteSettings(of: id) })
        let api = DeviceAPI(
            catalog: startup.catalog, registry: startup.registry, clock: clock, configurations: configurations,
            ddi: configuration.ddi.enabled ? DDIAccess(settings: configuration.ddi, secrets: secrets, gatewayToken: startup.ddiGatewayToken) : nil,
            transportDigests: { [store = startup.store] hex in
                (try? BlobDigest(hex: hex)).flatMap { try? store.transportDigests($0) }
            })
        var listeners = Listeners(router: router, meshBox: meshBox, engineBox: engineBox, api: api, releases: releases)
        let (traffic, unreadable) = TrafficTotals.load(path: configuration.trafficPath)
        if let unreadable { logger.warning("\(unreadable)") }
        listeners.traffic = traffic
        let deviceServer = DeviceServer(
            api: api, blobPath: { [store = startup.store] in configurations.path(sha256: $0) ?? store.path(ofHex: $0) }, logger: logger,
            idleTimeout: configuration.deviceIdleTimeout, gate: gates.device, traffic: listeners.traffic)
        do {
            let plain = try await Self.listen("device.listen", configuration.deviceListen) {
                try await deviceServer.bind(host: configuration.deviceListen.host, port: configuration.deviceListen.port)
            }
            listeners.device.append(plain)
            listeners.deviceURL = Self.url(plain, scheme: "http")
            if let tlsListen = configuration.deviceTLSListen, let context = startup.tlsContext {
                let secure = try await Self.listen("device.tlsListen", tlsListen) {
                    try await deviceServer.bind(host: tlsListen.host, port: tlsListen.port, tls: context)
                }
                listeners.device.append(secure)
                listeners.deviceTLSURL = Self.url(secure, scheme: "https")
            }
            api.setDevicePorts(http: plain.localAddress?.port, tls: listeners.device.count > 1 ? listeners.device[1].localAddress?.port : nil)
            if let gossipListen = configuration.gossipListen, let keyring = startup.keyring {
                let info = MemberInfo(
                    httpPort: plain.localAddress?.port, software: OTAMeshVersion.current,
                    metadataVersion: PeerSync.metadataVersion(tufDirectory: startup.tufDirectory), keys: [],
                    upstream: configuration.upstreamMetadataURL != nil ? true : nil)
                listeners.mesh = try await Self.listen("gossip.listen", gossipListen) {
                    try await Mesh.bind(
                        listen: gossipListen, advertise: configuration.gossipAdvertise, name: configuration.nodeName, keyring: keyring,
                        keyringPath: configuration.siteKeyringPath, info: info, seeds: configuration.gossipJoin,
                        gate: gates.gossip, journalPath: "\(configuration.dataDirectory)/gossip/records.journal", wallClock: clock, logger: logger)
                }
            }
        } catch {
            await listeners.close()
            throw error
        }
        return listeners
    }

    /// What the mesh says now about fetching from upstream: the alive members with an upstream
    /// and the images alive peers hold.
    static func siteFetchers(_ mesh: Mesh) -> UpstreamSync.SiteFetchers {
        let alive = mesh.view().members.filter { $0.status == "alive" }
        return UpstreamSync.SiteFetchers(
            me: mesh.me.name, candidates: alive.filter { $0.upstream == true }.map(\.name), held: Set(alive.flatMap(\.images)))
    }

    /// The services of a started agent (nothing runs until the group starts them).
    func makeServices(_ startup: AgentStartup, _ listeners: Listeners) throws -> [any Service] {
        let store = startup.store
        let tuf = startup.tufDirectory
        var services: [any Service] = []
        let claims = FetchClaims()
        if let metadataURL = configuration.upstreamMetadataURL {
            // In a mesh only the plan's fetchers download a new image; the others take it from them.
            var site: (@Sendable () -> UpstreamSync.SiteFetchers?)?
            if let mesh = listeners.mesh { site = { Self.siteFetchers(mesh) } }
            services.append(
                UpstreamSync(
                    metadataURL: metadataURL, targetsURL: configuration.upstreamTargetsURL ?? metadataURL,
                    patterns: configuration.upstreamTargets, interval: configuration.upstreamInterval, tufDirectory: tuf,
                    store: store, fetch: Self.fetcher(configuration, logger: logger), clock: clock, releases: listeners.releases,
                    traffic: listeners.traffic, plan: configuration.upstreamPlan, site: site, claims: claims, logger: logger))
        }
        let api = listeners.api
        services.append(TrafficSaver(totals: listeners.traffic, path: configuration.trafficPath, logger: logger))
        services.append(DeviceService(api: api, channels: listeners.device, store: store, releases: listeners.releases, logger: logger))
        if configuration.deviceDiscoveryMDNS { services.append(DeviceDiscoveryService(registry: startup.registry, logger: logger, clock: clock)) }
        guard let mesh = listeners.mesh, let keyring = startup.keyring else { return services }
        // With an upstream, peers still bring the images other gateways fetched for the site.
        let peerSync = PeerSync(
            tufDirectory: tuf, store: store, patterns: configuration.upstreamTargets, fetch: Self.fetcher(configuration, logger: logger, retryTimeout: 30),
            logger: logger, traffic: listeners.traffic, metadataFromPeers: configuration.upstreamMetadataURL == nil, claims: claims,
            swarmDirectory: "\(configuration.dataDirectory)/swarm")
        services.append(
            MeshService(mesh: mesh, tufDirectory: tuf, releases: listeners.releases, peerSync: peerSync, logger: logger, traffic: listeners.traffic))
        services.append(DeviceSummaryService(mesh: mesh, registry: startup.registry, logger: logger))
        services.append(SettingsService(mesh: mesh, registry: startup.registry, logger: logger))
        if configuration.discoveryMDNS, let httpPort = listeners.device.first?.localAddress?.port {
            let advert = DiscoveryAdvert(
                nodeName: configuration.nodeName, siteID: keyring.site, gossipPort: mesh.me.port,
                httpPort: UInt16(httpPort), addresses: [mesh.me.host])
            services.append(DiscoveryService(discovery: MDNSDiscovery(advert: advert, logger: logger), mesh: mesh, logger: logger))
        }
        listeners.meshBox.withLockedValue { $0 = mesh }
        // Rollouts need the site's admin keys and a trusted root to check what they deliver.
        guard let trust = startup.siteTrust, startup.hasTrustRoot else { return services }
        let deviceURL = listeners.deviceURL
        let notifier = configuration.alertsWebhook.map { WebhookNotifier(url: $0, logger: logger) }
        if let notifier { services.append(notifier) }
        // Push adapters ("upgrade local"): registry devices of their family are pushed to.
        let pushTiming = configuration.pushTiming(family:)
        let engine = RolloutEngine(
            gateway: configuration.nodeName, trust: trust, store: mesh, registry: startup.registry,
            clock: clock, logger: logger,
            adapters: [
                ProjectMMAdapter(timing: pushTiming(.projectMM)), HTTPUploadAdapter(timing: pushTiming(.httpUpload)),
                ArduinoOTAAdapter(timing: pushTiming(.arduinoOTA)), FetchURLAdapter(timing: pushTiming(.fetchURL)),
            ],
            image: { [store] target in
                guard let digest = try? BlobDigest(hex: target.sha256), (try? store.blob(digest)) != nil else { return nil }
                return PushImage(
                    path: target.path, sha256: target.sha256, length: target.length, version: target.version,
                    file: store.path(ofHex: target.sha256), url: "\(deviceURL)/v1/targets/\(target.path)",
                    variant: target.hardware)
            },
            secrets: DeviceSecretStore(
                path: DeviceSecretStore.path(dataDirectory: configuration.dataDirectory),
                allowOpenPermissions: configuration.insecurePermissions),
            pushLimits: configuration.pushLimits, catalog: { [releases = listeners.releases] in releases.current },
            events: { [notifier] events in notifier?.send(events) }, admission: configuration.deviceAdmission,
            configurations: api.configurations)
        listeners.engineBox.withLockedValue { $0 = engine }
        api.attach(engine)
        services.append(RolloutService(engine: engine, registry: startup.registry, gateway: configuration.nodeName))
        return services
    }

    /// Raises the soft limit on open files to the hard one (at most 1,048,576): every device,
    /// admin and gossip connection is a file descriptor, and the common soft limit of 1,024 let
    /// about 1,100 idle connections stop a gateway. Never lowers it; a failure only logs.
    /// Returns the soft limit in force afterwards (the connection caps are derived from it).
    @discardableResult
    static func raiseFileLimit(logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        let wanted = min(limit.rlim_max, 1 << 20)
        guard limit.rlim_cur < wanted else { return Int(clamping: limit.rlim_cur) }
        let before = limit.rlim_cur
        limit.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("open files limit raised", metadata: ["limit.before": "\(before)", "limit.now": "\(wanted)"])
            return Int(clamping: wanted)
        } else {
            logger.warning("open files limit not raised", metadata: ["limit.soft": "\(before)", "error.errno": "\(errno)"])
            return Int(clamping: before)
        }
    }

    /// A listener that could not be opened, named by its configuration key and address.
    public struct ListenError: Error, CustomStringConvertible {
        public let key: String
        public let address: ListenAddress
        public let reason: String
        public var description: String { "\(key) \(address): cannot listen: \(reason)" }
    }

    static func listen<Bound>(_ key: String, _ address: ListenAddress, _ bind: () async throws -> Bound) async throws -> Bound {
        do { return try await bind() } catch let error as IOError {
            throw ListenError(key: key, address: address, reason: "\(String(cString: strerror(error.errnoCode))) (errno \(error.errnoCode))")
        } catch {
            throw ListenError(key: key, address: address, reason: "\(error)")
        }
    }

    static func fetcher(_ configuration: AgentConfiguration, logger: Logger, retryTimeout: Double? = nil) -> ResumableFetch {
        var policy = RetryPolicy()
        policy.retryTimeout = min(configuration.transferRetryTimeout, retryTimeout ?? .infinity)
        return ResumableFetch(
            policy: policy, proxies: configuration.proxySettings(environment: ProcessInfo.processInfo.environment),
            logger: logger)
    }

    static func url(_ channel: any Channel, scheme: String) -> String {
        let port = channel.localAddress?.port ?? 0
        let host = channel.localAddress?.ipAddress ?? "?"
        return "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// Keeps `N.root.json` beside the trusted `root.json`, so peers can walk the root chain from
    /// this gateway's mirror (data directories from before the mesh have only `root.json`).
    static func keepVersionedRoot(tufDirectory: String) {
        let persistence = DirectoryPersistence(directory: tufDirectory)
        guard let bytes = persistence.load("root.json"), let root = try? RootMetadata(bytes: bytes, file: "root.json"),
            persistence.load("\(root.version).root.json") == nil
        else { return }
        try? persistence.save("\(root.version).root.json", bytes)
    }

    /// Installs the provisioned root.json into `tuf/` unless a root is already trusted there
    /// (a trusted root only ever changes through signed rotation).
    static func installTrustRoot(_ path: String?, tufDirectory: String) throws {
        guard let path else { return }
        let persistence = DirectoryPersistence(directory: tufDirectory)
        guard persistence.load("root.json") == nil else { return }
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw TrustError.fetch(file: path, reason: "cannot read the trust root")
        }
        let bytes = [UInt8](data)
        let root = try RootMetadata(bytes: bytes, file: path)
        mkdir(tufDirectory, 0o755)
        try persistence.save("root.json", bytes)
        try persistence.save("\(root.version).root.json", bytes)
    }
}
