import Logging
import NIOConcurrencyHelpers
import OTAMeshStore
import OTAMeshTrust

/// What this gateway trusts and holds — its verified targets, blobs and signed metadata — as
/// one value the agent owns. Whatever changes the trusted metadata or the store says so
/// (``changed(_:)``: upstream sync, peer sync, bundle import, a trust root installed); whatever
/// depends on it — serving devices, announcing holdings and the metadata version to the mesh,
/// rollouts — reads ``current`` or waits on ``changes()``. Nothing polls `tuf/` for changes.
///
/// While an agent runs it holds the store's lock, so every such change happens in its own
/// process: the CLI's `otamesh import` goes through the agent's admin API then.
public final class ReleaseCatalog: Sendable {
    struct State {
        var catalog: ServingCatalog
        /// Bumped by every reload.
        var generation: UInt64 = 0
        var subscribers: [UInt64: AsyncStream<ServingCatalog>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0
    }

    let store: BlobStore
    let tufDirectory: String
    let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// One reload at a time, so a later change is never overwritten by an earlier reload.
    private let reloading = NIOLock()

    public init(store: BlobStore, tufDirectory: String, initial: ServingCatalog, logger: Logger) {
        self.store = store
        self.tufDirectory = tufDirectory
        self.logger = logger
        state = NIOLockedValueBox(State(catalog: initial))
    }

    /// What the gateway trusts and holds now.
    public var current: ServingCatalog { state.withLockedValue { $0.catalog } }

    /// How many times the catalog was reloaded.
    public var generation: UInt64 { state.withLockedValue { $0.generation } }

    /// Something changed the trusted metadata or the store (`why`, for the log): the catalog is
    /// read again and every subscriber gets it. A catalog that cannot be read keeps the last one.
    public func changed(_ why: String) {
        reloading.withLock {
            let catalog: ServingCatalog
            do { catalog = try ServingCatalog.load(store: store, tufDirectory: tufDirectory) } catch {
                logger.error("release catalog not reloaded", metadata: ["catalog.reason": "\(why)", "error": "\(error)"])
                return
            }
            let subscribers = state.withLockedValue { state in
                state.catalog = catalog
                state.generation += 1
                return Array(state.subscribers.values)
            }
            for subscriber in subscribers { subscriber.yield(catalog) }
        }
    }

    /// The catalog now, then after every change (only the newest while a reader is behind).
    public func changes() -> AsyncStream<ServingCatalog> {
        let (stream, continuation) = AsyncStream<ServingCatalog>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLockedValue { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            continuation.yield(state.catalog)
            return id
        }
        continuation.onTermination = { [state] _ in state.withLockedValue { _ = $0.subscribers.removeValue(forKey: id) } }
        return stream
    }

    /// Verified targets the gateway knows (from its trusted top-level and delegated targets
    /// metadata in `tufDirectory`), with whether the store holds each, by path.
    public static func trustedTargets(tufDirectory: String, store: BlobStore) throws -> [(TargetFile, inCache: Bool)] {
        let persistence = DirectoryPersistence(directory: tufDirectory)
        var result: [(TargetFile, Bool)] = []
        for name in FileSystem.list(tufDirectory, regularFilesOnly: true)
        where name.hasSuffix(".json") && !["root.json", "timestamp.json", "snapshot.json"].contains(name) {
            guard let bytes = persistence.load(name), let metadata = try? TargetsMetadata(bytes: bytes, file: name) else { continue }
            for target in metadata.targets.values {
                let cached = (target.hashes["sha256"]).flatMap { try? BlobDigest(hex: $0) }.flatMap { try? store.blob($0) } != nil
                result.append((target, cached))
            }
        }
        return result.sorted { $0.0.path < $1.0.path }
    }
}
