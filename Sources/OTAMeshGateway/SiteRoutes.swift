import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshStore
import OTAMeshTrust

/// The site view and air-gapped import on the admin API (docs/operations.md):
///
/// | route | role | what |
/// |---|---|---|
/// | `GET /api/v1/devices` | read | every device of the site (``SiteDevices``): this gateway's registry merged with every gateway's `dv/` records |
/// | `POST /api/v1/devices/changes` | admin | one ``DeviceChange`` (assign, unassign, tag, accept, add, remove) applied to this agent's registry: `{"lines": […]}`, or the ``DeviceChangeError`` with 404 / 400 / 500 |
/// | `POST /api/v1/bundles` | admin | an update bundle (tar, at most ``maxBundleBytes``), verified and imported into this agent's store |
/// | `POST /api/v1/trust-root` | admin | the site's root.json, installed when this gateway trusts none yet |
/// | `POST /api/v1/cache/changes` | admin | one ``CacheChange`` (verify, gc, pin, unpin, rm) applied to this agent's store: a ``CacheChangeReport``; a malformed digest 400, an unknown blob 404 |
/// | `POST /api/v1/cache/blobs?sha256=&size=&pin=` | admin | a file's bytes (at most ``CacheChanges/maxUploadBytes``) added to this agent's store, checked against `sha256`/`size` when given: a ``CacheAddResult`` |
struct SiteRoutes: AdminRouteSet {
    /// The agent's device registry (opened before any listener).
    let registry: DeviceRegistry
    let mesh: NIOLockedValueBox<Mesh?>
    let gateway: String
    let store: BlobStore
    let tufDirectory: String
    /// Now, for the TUF expiry checks of an imported bundle.
    let clock: WallClock
    /// Told after an import or a new trust root.
    let releases: ReleaseCatalog
    /// Device registry changes the CLI sends while this agent runs.
    let changes: DeviceChanges
    /// One import at a time: two would race on the trusted metadata files.
    let importing = NIOLockedValueBox(false)

    /// The largest bundle the API takes (the import verifies it in memory).
    static let maxBundleBytes = 512 << 20

    func register(on api: AdminAPIGroup) {
        api.get("devices") { _, _ -> Response in
            let meshNow = mesh.withLockedValue { $0 }
            return try AdminRoutes.encoded(
                SiteDevices(
                    gateway: gateway, site: meshNow != nil,
                    devices: Self.siteDevices(gateway: gateway, registry: registry, mesh: meshNow)))
        }
        api.post("devices/changes") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 << 10)
            let change: DeviceChange
            do { change = try JSONDecoder().decode(DeviceChange.self, from: Data(buffer: body)) } catch {
                return Self.text(.badRequest, "not a device change: \(error)")
            }
            do {
                let lines = try await NIOThreadPool.singleton.runIfActive { try changes.apply(change) }
                return try AdminRoutes.encoded(["lines": lines])
            } catch let error as DeviceChangeError {
                let status: HTTPResponse.Status =
                    switch error.kind {
                    case .notFound: .notFound
                    case .invalid: .badRequest
                    case .failed: .internalServerError
                    }
                return try AdminRoutes.encoded(error, status: status)
            }
        }
        api.post("bundles") { request, _ -> Response in
            let claimed = importing.withLockedValue { busy in
                if busy { return false }
                busy = true
                return true
            }
            guard claimed else { return Self.text(.conflict, "another bundle import is running on this gateway; try again when it has finished") }
            defer { importing.withLockedValue { $0 = false } }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: Self.maxBundleBytes) } catch is NIOTooManyBytesError {
                return Self.text(
                    .contentTooLarge, "bundle larger than \(Self.maxBundleBytes) bytes: import it with the agent stopped (otamesh import --data-dir DIR)")
            }
            do {
                // Even a refused bundle may have saved some images or metadata first.
                defer { releases.changed("bundle import") }
                let report = try await Bundles.importBundle(
                    Array(body.readableBytesView), file: "uploaded bundle", tufDirectory: tufDirectory,
                    store: store, now: clock.now().wholeSeconds)
                return try AdminRoutes.encoded(report)
            } catch let error as TrustError {
                return Self.text(.unprocessableContent, "bundle refused: \(error)")
            } catch let error as StoreError {
                return Self.text(.internalServerError, "bundle verified but not stored: \(error)")
            }
        }
        api.post("cache/changes") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 << 10)
            let change: CacheChange
            do { change = try JSONDecoder().decode(CacheChange.self, from: Data(buffer: body)) } catch {
                return Self.text(.badRequest, "not a cache change: \(error)")
            }
            do {
                // Blobs may have gone (evicted, removed, quarantined): what this gateway holds is news.
                defer { releases.changed("cache change") }
                return try AdminRoutes.encoded(try await NIOThreadPool.singleton.runIfActive { try CacheChanges.apply(change, to: store) })
            } catch let error as StoreError {
                return Self.storeRefusal(error)
            }
        }
        api.post("cache/blobs") { request, _ -> Response in
            let query = request.uri.queryParameters
            let expected: ExpectedContent?
            do {
                let size = try query.get("size").map { text in
                    guard let size = Int64(text), size >= 0 else { throw StoreError.invalidDigest("size \(text)") }
                    return size
                }
                expected = try query.get("sha256").map { ExpectedContent(digest: try BlobDigest(hex: String($0)), size: size) }
                if size != nil, expected == nil { return Self.text(.badRequest, "size needs sha256") }
            } catch {
                return Self.text(.badRequest, "\(error)")
            }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: CacheChanges.maxUploadBytes) } catch is NIOTooManyBytesError {
                return Self.text(.contentTooLarge, CacheChanges.TooLarge(file: "the file").description)
            }
            let pin: String? = query.get("pin").map { String($0) }
            do {
                let result = try await NIOThreadPool.singleton.runIfActive { () throws -> CacheAddResult in
                    let present = try expected.flatMap { try store.blob($0.digest) } != nil
                    let record = try store.add(bytes: Array(body.readableBytesView), expected: expected)
                    if let pin { try store.pin(record.digest, label: pin) }
                    return CacheAddResult(blob: CacheEntry(try store.blob(record.digest) ?? record), alreadyPresent: present, resumedFrom: 0)
                }
                releases.changed("cache add")
                return try AdminRoutes.encoded(result)
            } catch let error as StoreError {
                return Self.storeRefusal(error)
            }
        }
        api.post("trust-root") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let bytes = Array(body.readableBytesView)
            do {
                _ = try RootMetadata(bytes: bytes, file: "uploaded root.json")
            } catch {
                return Self.text(.unprocessableContent, "root refused: \(error)")
            }
            let persistence = DirectoryPersistence(directory: tufDirectory)
            if let trusted = persistence.load("root.json") {
                return trusted == bytes
                    ? AdminRoutes.json(["root": "already trusted"])
                    : Self.text(.conflict, "this gateway already trusts a root: a new one only arrives by signed rotation (in a bundle)")
            }
            let root = try RootMetadata(bytes: bytes, file: "uploaded root.json")
            mkdir(tufDirectory, 0o755)
            try persistence.save("root.json", bytes)
            try persistence.save("\(root.version).root.json", bytes)
            releases.changed("trust root installed")
            return AdminRoutes.json(["root": "installed"])
        }
    }

    /// The site's devices as `gateway` sees them: its registry merged with every gateway's `dv/`
    /// summaries (and their `dv.run` marks); its own only while gossip is off.
    static func siteDevices(gateway: String, registry: DeviceRegistry, mesh: Mesh?) -> [SiteDevice] {
        DeviceSummaries.merge(gateway: gateway, local: registry.all(), published: mesh?.view(of: DeviceSummaryChannel.self) ?? .init())
    }

    /// A store error as the admin API answers it: what the caller got wrong (a malformed digest,
    /// content that does not match, no room) or what is missing, else the gateway's own failure.
    static func storeRefusal(_ error: StoreError) -> Response {
        let status: HTTPResponse.Status =
            switch error {
            case .invalidDigest, .digestMismatch, .sizeMismatch, .exceedsExpectedSize: .badRequest
            case .notFound: .notFound
            case .quotaExceeded: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
            default: .internalServerError
            }
        return text(status, "\(error)")
    }

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}
