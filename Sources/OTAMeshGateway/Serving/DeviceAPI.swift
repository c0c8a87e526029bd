import Crypto
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshFirmware
import OTAMeshStore
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// The stateful side of the device routes: the current ``ServingCatalog``, the registry and
/// the MD5 cache. ``DeviceRoutes`` decides; this records.
public final class DeviceAPI: Sendable {
    public let registry: DeviceRegistry
    let catalogBox: NIOLockedValueBox<ServingCatalog>
    let digestCache = NIOLockedValueBox<[String: DeviceRoutes.BlobDigests]>([:])
    /// Sightings are dated off it (the registry keeps seconds).
    let clock: WallClock
    let baseContext: DeviceRoutes.Context
    /// The rollout engine, once the mesh is up (nil: manual assignments only).
    let rollouts = NIOLockedValueBox<(any DeviceRollouts)?>(nil)
    /// The devices' configuration images (nil: filesystem mode answers 304).
    let configurations: DeviceConfigurations?
    /// A blob's SHA-1 and MD5 as the store recorded them (nil: computed from the file here).
    let transportDigests: (@Sendable (String) -> (sha1: String, md5: String)?)?
    let devicePorts = NIOLockedValueBox<(http: Int?, tls: Int?)>((nil, nil))
    let ddiActions = NIOLockedValueBox(DDIActionMemory())
    /// Piece lists of held blobs peers asked for, by `SHA256/SIZE` (at most ``maxPieceLists``).
    let pieceLists = NIOLockedValueBox<[String: [UInt8]]>([:])
    static let maxPieceLists = 64

    public init(
        catalog: ServingCatalog, registry: DeviceRegistry, clock: WallClock = .system, configurations: DeviceConfigurations? = nil,
        ddi: DDIAccess? = nil, transportDigests: (@Sendable (String) -> (sha1: String, md5: String)?)? = nil
    ) {
        self.catalogBox = NIOLockedValueBox(catalog)
        self.registry = registry
        self.clock = clock
        self.configurations = configurations
        self.transportDigests = transportDigests
        let digestCache = digestCache
        let pieceLists = pieceLists
        var context = DeviceRoutes.Context(
            catalog: ServingCatalog(), assignment: { registry.assignment(for: $0) },
            digests: { sha in digestCache.withLockedValue { $0[sha] } })
        if let configurations {
            context.configuration = { configurations.offer($0) }
        } else {
            context.configuration = { _ in ConfigurationOffer(problem: "this gateway builds no configuration images") }
        }
        if let ddi { context.ddi = Self.ddiContext(ddi, registry: registry, actions: ddiActions, ports: devicePorts) }
        context.pieceList = { sha, size in pieceLists.withLockedValue { $0["\(sha)/\(size)"] } }
        self.baseContext = context
    }

    public var catalog: ServingCatalog {
        get { catalogBox.withLockedValue { $0 } }
    }

    /// Swaps in a reloaded catalog.
    public func replaceCatalog(_ catalog: ServingCatalog) {
        catalogBox.withLockedValue { $0 = catalog }
    }

    public enum Outcome: Sendable {
        case response(DeviceResponse)
        case needDigests(String)
        /// Build the device's configuration image (``prepareConfiguration(_:)``), then ask again.
        case needConfiguration(String)
        /// Hash the blob's pieces (``computePieces(sha256:size:path:)``), then ask again.
        case needPieces(String, size: Int64)
    }

    /// One device request: the pure routes decide (``DeviceRoutes``); this carries out what
    /// they ask — the rollouts' answer for the device, the sighting to record, what to tell the
    /// rollouts — and returns what the device is told.
    public func handle(_ request: DeviceRequest) -> Outcome {
        // The context's closures are made once (in init); only the catalog changes per request.
        var context = baseContext
        context.catalog = catalog
        let engine = rollouts.withLockedValue { $0 }
        context.rolloutsActive = engine != nil
        // The routes ask for one device's answer at most once.
        for _ in 0..<2 {
            switch DeviceRoutes.handle(request, context: context) {
            case .needDigests(let sha256):
                return .needDigests(sha256)
            case .needConfiguration(let id):
                return .needConfiguration(id)
            case .needPieces(let sha256, let size):
                return .needPieces(sha256, size: size)
            case .needRolloutAnswer(var query):
                guard let engine else { break }
                query = filled(query)
                context.rolloutAnswer = (query, engine.answer(query))
            case .response(let response, let sighting, let conclusion, let feedback):
                if let conclusion { engine?.concluded(filled(conclusion.query), rollout: conclusion.rollout, upToDate: conclusion.upToDate) }
                if let feedback { apply(feedback, engine: engine) }
                if let sighting {
                    registry.observe(sighting, at: clock.now().seconds)
                    if let (reported, current) = sighting.configuration {
                        configurations?.noteReported(sighting.id, configID: reported)
                        if current {
                            engine?.configurationReported(
                                DeviceQuery(id: sighting.id, family: sighting.family, version: registry.device(sighting.id)?.version, configured: true))
                        }
                    }
                }
                return .response(response)
            }
        }
        return .response(.text(500, "device routes asked twice for the rollouts' answer\n"))
    }

    /// What the routes cannot know of a device: whether its filesystem holds its current
    /// configuration, and (asking in filesystem mode, where the version header is the
    /// configuration's) the firmware version it last reported.
    func filled(_ query: DeviceQuery) -> DeviceQuery {
        var query = query
        if query.filesystem, query.version == nil { query.version = registry.device(query.id)?.version }
        query.configured = configurations?.isCurrent(query.id, version: query.version) ?? false
        return query
    }

    /// Starts carrying out rollouts: device answers come from `engine` first.
    public func attach(_ engine: any DeviceRollouts) {
        rollouts.withLockedValue { $0 = engine }
    }

    /// A blob body started going out to a device (`device`, when the route knows it, else the
    /// client `address`), or finished (`reachedEnd`: its last byte was sent): rollouts follow a
    /// device's download from it.
    public func bodySent(sha256: String, device: String?, address: String, finished: Bool, reachedEnd: Bool) {
        guard let engine = rollouts.withLockedValue({ $0 }) else { return }
        if !finished {
            engine.transfer(sha256: sha256, device: device, address: address, completed: false)
        } else if reachedEnd {
            engine.transfer(sha256: sha256, device: device, address: address, completed: true)
        }
    }

    /// Builds a device's configuration image (blocking: call from a thread pool).
    public func prepareConfiguration(_ id: String) {
        configurations?.prepare(id)
    }

    /// Computes and caches a blob's piece list for pieces of `size` bytes (blocking: call from a
    /// thread pool).
    public func computePieces(sha256: String, size: Int64, path: String) throws {
        guard pieceLists.withLockedValue({ $0["\(sha256)/\(size)"] }) == nil else { return }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RegistryError(path: path, reason: "cannot open blob for its pieces (errno \(errno))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw RegistryError(path: path, reason: "cannot stat blob (errno \(errno))") }
        var hasher = PieceManifest.Hasher(layout: try PieceLayout(length: Int64(info.st_size), pieceSize: size))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw RegistryError(path: path, reason: "read failed (errno \(errno))") }
            if n == 0 { break }
            hasher.update(buffer[0..<n])
        }
        let list = try hasher.finish().list
        pieceLists.withLockedValue { lists in
            if lists.count >= Self.maxPieceLists, let any = lists.keys.first { lists[any] = nil }
            lists["\(sha256)/\(size)"] = list
        }
    }

    /// Computes and caches a blob's MD5, SHA-1 and trailing digest (blocking: call from a thread pool).
    public func computeDigests(sha256: String, path: String) throws {
        if digestCache.withLockedValue({ $0[sha256] }) != nil { return }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RegistryError(path: path, reason: "cannot open blob for MD5 (errno \(errno))") }
        defer { close(fd) }
        if let (sha1, md5) = transportDigests?(sha256) {
            // Recorded at ingest: only the last 32 bytes are read.
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw RegistryError(path: path, reason: "cannot stat blob (errno \(errno))") }
            var tail = [UInt8](repeating: 0, count: 32)
            let n = info.st_size >= 32 ? tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, off_t(info.st_size - 32)) } : 0
            let digests = DeviceRoutes.BlobDigests(md5: md5, appendedDigest: n == 32 ? hexString(tail) : nil, sha1: sha1)
            digestCache.withLockedValue { $0[sha256] = digests }
            return
        }
        // Not a store blob (or its store cannot say): MD5 and SHA-1 (for DDI) in one pass.
        var hasher = Insecure.MD5()
        var sha1 = Insecure.SHA1()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var tail: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw RegistryError(path: path, reason: "read failed (errno \(errno))") }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            sha1.update(data: buffer[0..<n])
            tail = n >= 32 ? Array(buffer[(n - 32)..<n]) : Array((tail + buffer[0..<n]).suffix(32))
        }
        let digests = DeviceRoutes.BlobDigests(
            md5: hexString(hasher.finalize()), appendedDigest: tail.count == 32 ? hexString(tail) : nil, sha1: hexString(sha1.finalize()))
        digestCache.withLockedValue { $0[sha256] = digests }
    }
}
