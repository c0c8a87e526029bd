import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshGossip
import OTAMeshStore
import Prometheus

/// The admin HTTP surface (port 8071): `/metrics`, `/healthz`, `/api/v1/cache`, `/api/v1/members`.
struct AdminRoutes: Sendable {
    let store: BlobStore
    let registry: PrometheusCollectorRegistry
    let nodeName: String
    /// The mesh, once bound (the admin router is built before it).
    let mesh: NIOLockedValueBox<Mesh?>
    /// The rollout engine, once the mesh is bound and a site trust file is loaded.
    let rollouts: NIOLockedValueBox<RolloutEngine?>
    let tufDirectory: String

    func router() -> Router<BasicRequestContext> {
        let router = Router()
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
        router.get("/api/v1/cache") { _, _ -> Response in
            // SQLite reads block; keep them off the event loop.
            let blobs = try await NIOThreadPool.singleton.runIfActive { try store.list() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(blobs.map(CacheEntry.init))
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.post("/api/v1/site/rotate") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            let rotation = try mesh.startRotation(nowMilliseconds: UInt64(Date().timeIntervalSince1970 * 1_000))
            return Self.json(["key": rotation.fingerprint, "phase": "\(rotation.phase)"])
        }
        router.get("/api/v1/records") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            return try Self.encoded(mesh.records())
        }
        router.post("/api/v1/records/{key}") { request, context -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            let key = context.parameters.get("key") ?? ""
            let body = try await request.body.collect(upTo: WireCodec.maxValue + 1)
            do {
                return try Self.encoded(try mesh.put(key, Array(body.readableBytesView)))
            } catch let error as WireError {
                return Response(status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: "record \(key): \(error)\n")))
            }
        }
        router.get("/api/v1/members") { _, _ -> Response in
            guard let mesh = mesh.withLockedValue({ $0 }) else { return Self.gossipOff() }
            return try Self.encoded(mesh.view())
        }
        RolloutRoutes(engine: rollouts, store: store, tufDirectory: tufDirectory, gateway: nodeName).register(on: router)
        return router
    }

    static func gossipOff() -> Response {
        Response(status: .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
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
