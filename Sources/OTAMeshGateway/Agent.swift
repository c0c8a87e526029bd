import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshDevices
import OTAMeshDiscovery
import OTAMeshStore
import OTAMeshTransfer
import Prometheus
import OTAMeshTrust
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

    /// Installs the Prometheus metrics backend; call once per process, before ``run(onReady:)``.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    public init(configuration: AgentConfiguration, registry: PrometheusCollectorRegistry, logger: Logger) {
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
    }

    /// Opens the store and serves until shutdown. `onReady` runs once the listener is bound.
    public func run(onReady: @escaping @Sendable (Ready) -> Void) async throws {
        let store = try BlobStore(
            configuration: StoreConfiguration(
                directory: configuration.dataDirectory, quotaBytes: configuration.cacheQuotaBytes,
                partialMaxAge: configuration.partialMaxAge),
            logger: logger)
        let info = Gauge(label: "otamesh_agent_info", dimensions: [("node", configuration.nodeName)])
        info.record(1)
        var rng = SystemRandomNumberGenerator()
        let meshBox = NIOLockedValueBox<Mesh?>(nil)
        let engineBox = NIOLockedValueBox<RolloutEngine?>(nil)
        let (tokens, tokensCreated) = try AdminTokens.loadOrCreate(admin: configuration.adminTokenPath, readOnly: configuration.adminReadTokenPath)
        let tuf = "\(configuration.dataDirectory)/tuf"
        let rolloutRoutes = RolloutRoutes(engine: engineBox, store: store, tufDirectory: tuf, gateway: configuration.nodeName)
        let deviceBox = NIOLockedValueBox<DeviceRegistry?>(nil)
        let siteRoutes = SiteRoutes(registry: deviceBox, mesh: meshBox, gateway: configuration.nodeName, store: store, tufDirectory: tuf)
        let signatures = SignedRequestGuard(trust: { engineBox.withLockedValue { $0?.trust } }, clock: { Int64(BlobStore.wallClock()) })
        let router = AdminRoutes(store: store, registry: registry, nodeName: configuration.nodeName, mesh: meshBox, tokens: tokens,
                                 signatures: signatures, routeSets: [rolloutRoutes, siteRoutes]).router()
        var services: [any Service] = []
        try Self.installTrustRoot(configuration.trustRoot, tufDirectory: tuf)
        Self.keepVersionedRoot(tufDirectory: tuf)
        if let metadataURL = configuration.upstreamMetadataURL {
            guard DirectoryPersistence(directory: tuf).load("root.json") != nil else {
                throw TrustError.notLoaded(role: Role.root, needs: "a trusted root: set trust.root (--trust-root FILE)")
            }
            services.append(UpstreamSync(
                metadataURL: metadataURL, targetsURL: configuration.upstreamTargetsURL ?? metadataURL,
                patterns: configuration.upstreamTargets, interval: configuration.upstreamInterval, tufDirectory: tuf,
                store: store, fetch: Self.fetcher(configuration, logger: logger), logger: logger))
        }
        let registry = try DeviceRegistry(path: "\(configuration.dataDirectory)/devices.sqlite")
        deviceBox.withLockedValue { $0 = registry }
        let api = DeviceAPI(catalog: try ServingCatalog.load(store: store, tufDirectory: tuf), registry: registry)
        let deviceServer = DeviceServer(api: api, blobPath: { [store] in store.path(ofHex: $0) }, logger: logger,
                                        idleTimeout: configuration.deviceIdleTimeout)
        let plain = try await Self.listen("device.listen", configuration.deviceListen) {
            try await deviceServer.bind(host: configuration.deviceListen.host, port: configuration.deviceListen.port)
        }
        var channels: [any Channel] = [plain]
        var tlsURL: String?
        if let tlsListen = configuration.deviceTLSListen,
            let context = try SiteCA(keysDirectory: "\(configuration.dataDirectory)/keys").serverContext()
        {
            let secure = try await Self.listen("device.tlsListen", tlsListen) {
                try await deviceServer.bind(host: tlsListen.host, port: tlsListen.port, tls: context)
            }
            channels.append(secure)
            tlsURL = Self.url(secure, scheme: "https")
        }
        let deviceURL = Self.url(plain, scheme: "http")
        let deviceTLSURL = tlsURL
        services.append(DeviceService(api: api, channels: channels, store: store, tufDirectory: tuf, logger: logger))
        if configuration.deviceDiscoveryMDNS { services.append(DeviceDiscoveryService(registry: registry, logger: logger)) }
        var mesh: Mesh?
        var keyringCreated: String?
        if let gossipListen = configuration.gossipListen {
            let path = configuration.siteKeyringPath
            let (keyring, created) = try SiteKeyringFile.loadOrCreate(path, site: "site-\(UInt32.random(in: .min ... .max, using: &rng))")
            if created { keyringCreated = path }
            let info = MemberInfo(httpPort: plain.localAddress?.port, software: OTAMeshVersion.current,
                                  metadataVersion: PeerSync.metadataVersion(tufDirectory: tuf), keys: [])
            let bound = try await Self.listen("gossip.listen", gossipListen) {
                try await Mesh.bind(listen: gossipListen, advertise: configuration.gossipAdvertise, name: configuration.nodeName, keyring: keyring,
                                    keyringPath: path, info: info, seeds: configuration.gossipJoin, logger: logger)
            }
            mesh = bound
            let peerSync = configuration.upstreamMetadataURL == nil
                ? PeerSync(tufDirectory: tuf, store: store, patterns: configuration.upstreamTargets, fetch: Self.fetcher(configuration, logger: logger, retryTimeout: 30), logger: logger)
                : nil
            services.append(MeshService(mesh: bound, store: store, tufDirectory: tuf, peerSync: peerSync, logger: logger))
            services.append(DeviceSummaryService(mesh: bound, registry: registry, logger: logger))
            if configuration.discoveryMDNS, let httpPort = plain.localAddress?.port {
                let advert = DiscoveryAdvert(nodeName: configuration.nodeName, siteID: keyring.site, gossipPort: bound.me.port,
                                             httpPort: UInt16(httpPort), addresses: [bound.me.host])
                services.append(DiscoveryService(discovery: MDNSDiscovery(advert: advert, logger: logger), mesh: bound, logger: logger))
            }
        }
        var rollouts: String?
        if let mesh {
            let path = configuration.siteTrustPath
            if let data = FileManager.default.contents(atPath: path) {
                let trust = try SiteTrust(bytes: [UInt8](data.prefix(1 << 20)), file: path)
                // Push adapters ("upgrade local"): registry devices of their family are pushed to.
                let pushTiming = configuration.pushTiming(family:)
                let engine = RolloutEngine(
                    gateway: configuration.nodeName, trust: trust, store: mesh, registry: registry,
                    now: { Int64(BlobStore.wallClock() * 1000) }, logger: logger,
                    adapters: [ProjectMMAdapter(timing: pushTiming("projectmm")), HTTPUploadAdapter(timing: pushTiming("http-upload")),
                               ArduinoOTAAdapter(timing: pushTiming("arduino-ota")), FetchURLAdapter(timing: pushTiming("fetch-url"))],
                    image: { [store] target in
                        guard let digest = try? BlobDigest(hex: target.sha256), (try? store.blob(digest)) != nil else { return nil }
                        return PushImage(path: target.path, sha256: target.sha256, length: target.length, version: target.version,
                                         file: store.path(ofHex: target.sha256), url: "\(deviceURL)/v1/targets/\(target.path)",
                                         variant: target.hardware)
                    },
                    secrets: DeviceSecretStore(path: DeviceSecretStore.path(dataDirectory: configuration.dataDirectory)),
                    pushLimits: configuration.pushLimits)
                engineBox.withLockedValue { $0 = engine }
                api.attach(engine)
                services.append(RolloutService(engine: engine, registry: registry, gateway: configuration.nodeName))
                rollouts = "site \(trust.site), \(trust.threshold) of \(trust.admins.count) admin keys (\(path); otamesh rollout)"
            } else {
                rollouts = "off: no site trust file at \(path) (otamesh keys site-trust, then restart)"
            }
        }
        let gossip = mesh.map { "\($0.me.host.contains(":") ? "[\($0.me.host)]" : $0.me.host):\($0.me.port)" }
        let site = mesh?.view().site
        let createdKeyring = keyringCreated
        let rolloutLine = rollouts
        meshBox.withLockedValue { $0 = mesh }
        let totals = try store.totals()
        let dataDirectory = configuration.dataDirectory
        let upstream = configuration.upstreamMetadataURL
        let app = Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.adminListen.host, port: configuration.adminListen.port),
                serverName: "otamesh"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let host = channel.localAddress?.ipAddress ?? "?"
                let shown = host.contains(":") ? "[\(host)]" : host
                AdminAddress.record(host: host, port: port, dataDirectory: dataDirectory)
                onReady(Ready(adminURL: "http://\(shown):\(port)", deviceURL: deviceURL, deviceTLSURL: deviceTLSURL, dataDirectory: dataDirectory,
                              blobCount: totals.count, cacheBytes: totals.bytes, upstream: upstream, gossip: gossip, site: site,
                              keyringCreated: createdKeyring, rollouts: rolloutLine, tokensCreated: tokensCreated))
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app] + services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
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
        return ResumableFetch(policy: policy, proxies: configuration.proxySettings(environment: ProcessInfo.processInfo.environment),
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
