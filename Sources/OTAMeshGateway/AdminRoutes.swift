import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshStore
import Prometheus

/// The admin API's authenticated group, `/api/v1`: every route registered on it needs a bearer
/// token or a site admin signature (``AdminAuth``). Register more routes with a `register(on:)` of your own and one line in
/// ``AdminRoutes/router()``.
public typealias AdminAPIGroup = RouterGroup<AdminRequestContext>

/// Routes that live in the authenticated `/api/v1` group, added through ``AdminRoutes/routeSets``.
protocol AdminRouteSet: Sendable {
    /// Adds the routes to `api` (paths relative to `/api/v1`, e.g. `api.get("rollouts")`).
    func register(on api: AdminAPIGroup)
    /// Adds routes outside `/api/v1` that need no credential (the dashboard's page).
    func registerOpen(on router: Router<AdminRequestContext>)
}

/// The admin HTTP surface (port 8071): `/metrics` and `/healthz` open; everything under
/// `/api/v1` (`cache`, `members`, `records`, `site/rotate`, …) behind the bearer tokens.
struct AdminRoutes: Sendable {
    let store: BlobStore
    let registry: PrometheusCollectorRegistry
    let nodeName: String
    /// The mesh, once bound (the admin router is built before it).
    let mesh: NIOLockedValueBox<Mesh?>
    let tokens: AdminTokens
    /// Checks requests signed with a site admin key (nil: only tokens are accepted).
    var signatures: SignedRequestGuard? = nil
    /// More `/api/v1` routes (e.g. rollouts), registered after this type's own, behind the same tokens.
    var routeSets: [any AdminRouteSet] = []

    func router() -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.get("/metrics") { _, _ -> Response in
            var buffer = [UInt8]()
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/healthz") { _, _ -> Response in
            Self.json(["status": "ok", "node": nodeName])
        }
        for routeSet in routeSets { routeSet.registerOpen(on: router) }
        let api = Self.authenticatedGroup(of: router, tokens: tokens, signatures: signatures)
        register(on: api)
        for routeSet in routeSets { routeSet.register(on: api) }
        return router
    }

    /// `/api/v1` with the token check in front. The middleware is added before any route, so it
    /// guards every route registered on the group afterwards (Hummingbird wraps a route in the
    /// middleware the group has when the route is added).
    static func authenticatedGroup(of router: Router<AdminRequestContext>, tokens: AdminTokens, signatures: SignedRequestGuard? = nil) -> AdminAPIGroup {
        router.group("api/v1").add(middleware: AdminAuth<AdminRequestContext>(tokens: tokens, signatures: signatures))
    }

    /// The cache and mesh routes.
    func register(on api: AdminAPIGroup) {
        api.get("cache") { _, _ -> Response in
            // SQLite reads block; keep them off the event loop.
            let blobs = try await NIOThreadPool.singleton.runIfActive { try store.list() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(blobs.map(CacheEntry.init))
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        api.post("site/rotate") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            let rotation = try mesh.startRotation(nowMilliseconds: UInt64(max(0, mesh.wallClock.now().milliseconds)))
            return Self.json(["key": rotation.fingerprint, "phase": "\(rotation.phase)"])
        }
        api.get("records") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            return try Self.encoded(mesh.records())
        }
        api.post("records/{key}") { request, context -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            let key = context.parameters.get("key") ?? ""
            let body = try await request.body.collect(upTo: WireCodec.maxValue + 1)
            do {
                return try Self.encoded(try mesh.put(key, Array(body.readableBytesView)))
            } catch let error as WireError {
                return Response(
                    status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "record \(key): \(error)\n")))
            }
        }
        api.get("members") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            return try Self.encoded(mesh.view())
        }
    }

    static func gossipOff() -> Response {
        Response(
            status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: "gossip is off on this gateway (gossip.listen: off)\n")))
    }

    static func encoded(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func json(_ object: [String: String]) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// One blob as the JSON API and `cache ls --json` show it.
public struct CacheEntry: Codable, Sendable, Equatable {
    public let sha256: String
    public let size: Int64
    public let addedAt: Double
    public let lastAccessAt: Double
    public let pins: [String]

    public init(_ record: BlobRecord) {
        sha256 = record.sha256
        size = record.size
        addedAt = record.addedAt
        lastAccessAt = record.lastAccessAt
        pins = record.pins
    }
}

/// Answers HEAD on every GET route of the admin API (RFC 9110 §9.3.2: the GET's status and
/// headers, no body), which Hummingbird's router does not do by itself. Authorization sees a GET:
/// a read-only token may make it.
struct HeadAsGet<Inner: HTTPResponder>: HTTPResponder {
    typealias Context = Inner.Context
    let inner: Inner

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await inner.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await inner.respond(to: Request(head: head, body: request.body), context: context)
        response.body = ResponseBody()
        return response
    }
}
