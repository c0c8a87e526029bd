import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOPosix
import OTAMeshStore
import Prometheus
import ServiceLifecycle

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
        public let dataDirectory: String
        public let blobCount: Int
        public let cacheBytes: Int64
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
        let router = AdminRoutes(store: store, registry: registry, nodeName: configuration.nodeName).router()
        let totals = try store.totals()
        let dataDirectory = configuration.dataDirectory
        let app = Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.adminListen.host, port: configuration.adminListen.port),
                serverName: "otamesh"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let host = channel.localAddress?.ipAddress ?? "?"
                let shown = host.contains(":") ? "[\(host)]" : host
                onReady(Ready(adminURL: "http://\(shown):\(port)", dataDirectory: dataDirectory,
                              blobCount: totals.count, cacheBytes: totals.bytes))
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
