import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshRollout
import OTAMeshStore
import OTAMeshTrust

/// The rollout part of the admin API (see docs/rollouts.md):
///
/// | route | what |
/// |---|---|
/// | `GET /api/v1/site` | site name, admin key ids, threshold, this gateway's name |
/// | `GET /api/v1/targets` | trusted targets, with whether each is cached |
/// | `GET /api/v1/rollouts`, `GET /api/v1/rollouts/{id}` | status; `?outcomes=1` adds every device's attempt (gateway, phase, start) |
/// | `GET /api/v1/rollouts/{id}/commands/{seq}` | a command's envelope with every signature collected |
/// | `POST /api/v1/rollouts` | a signed plan |
/// | `POST /api/v1/rollouts/preview` | an unsigned plan's selection: devices per stage and gateway, left out, warnings |
/// | `POST /api/v1/rollouts/{id}/commands` | a signed control, or another signature (approval) |
/// | `POST /api/v1/rollouts/{id}/halt` | halt (no signature: the safe direction) |
struct RolloutRoutes: AdminRouteSet {
    let engine: NIOLockedValueBox<RolloutEngine?>
    let store: BlobStore
    let tufDirectory: String
    let gateway: String
    /// The site's devices as gossiped (`dv/` summaries), for previews; empty without gossip.
    var siteDevices: @Sendable () -> [SiteDevice] = { [] }

    static let maxCommandBytes = 64 * 1024

    func register(on router: AdminAPIGroup) {
        router.get("site") { _, _ -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            return try AdminRoutes.encoded(
                SiteInfo(
                    site: engine.trust.site, threshold: engine.trust.threshold,
                    admins: engine.trust.admins.keys.sorted(), gateway: engine.gateway))
        }
        router.get("targets") { _, _ -> Response in
            let images = try await NIOThreadPool.singleton.runIfActive { try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store) }
            return try AdminRoutes.encoded(
                images.compactMap { target, cached -> TargetInfo? in
                    guard let sha = target.hashes["sha256"] else { return nil }
                    return TargetInfo(
                        path: target.path, sha256: sha.lowercased(), length: target.length,
                        version: target.custom?["version"]?.stringValue, hardware: target.custom?["hardware"]?.stringValue, cached: cached,
                        app: target.custom?["app"]?["name"]?.stringValue)
                })
        }
        router.get("rollouts") { request, _ -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            return try AdminRoutes.encoded(["rollouts": engine.statuses(outcomes: Self.wantsOutcomes(request))])
        }
        router.get("rollouts/{id}") { request, context -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            let id = context.parameters.get("id") ?? ""
            guard let status = engine.status(id, outcomes: Self.wantsOutcomes(request)) else {
                return Self.text(.notFound, "rollout \(id): not known on this gateway")
            }
            return try AdminRoutes.encoded(status)
        }
        router.get("rollouts/{id}/commands/{sequence}") { _, context -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            let id = context.parameters.get("id") ?? ""
            guard let sequence = context.parameters.get("sequence").flatMap({ Int64($0) }),
                let envelope = engine.envelope(id, sequence: sequence)
            else { return Self.text(.notFound, "rollout \(id): no such command") }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: envelope.bytes)))
        }
        router.post("rollouts") { request, _ -> Response in
            try await submit(request, rollout: nil, created: true)
        }
        router.post("rollouts/preview") { request, _ -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            let body = try await request.body.collect(upTo: Self.maxCommandBytes)
            let plan: RolloutPlan
            do throws(RolloutError) {
                let json: JSONValue
                do { json = try JSONValue.parse(Array(body.readableBytesView)) } catch { throw .invalidPlan(field: "body", reason: "not JSON: \(error)") }
                plan = try RolloutPlan(json: json)
            } catch { return Self.text(.badRequest, "preview: \(error.description)") }
            return try AdminRoutes.encoded(engine.preview(plan, site: siteDevices()))
        }
        router.post("rollouts/{id}/commands") { request, context -> Response in
            try await submit(request, rollout: context.parameters.get("id") ?? "", created: false)
        }
        router.post("rollouts/{id}/halt") { request, context -> Response in
            guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
            let id = context.parameters.get("id") ?? ""
            let body = try await request.body.collect(upTo: 4096)
            let reason = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["reason"] as? String
            guard engine.halt(id, reason: reason ?? "no reason given") else { return Self.text(.notFound, "rollout \(id): no approved plan known here") }
            return try AdminRoutes.encoded(engine.status(id), status: .accepted)
        }
    }

    func submit(_ request: Request, rollout: String?, created: Bool) async throws -> Response {
        guard let engine = engine.withLockedValue({ $0 }) else { return Self.off() }
        let body = try await request.body.collect(upTo: Self.maxCommandBytes)
        let id: String
        do throws(RolloutEngine.SubmitError) {
            id = try engine.submit(Array(body.readableBytesView), rollout: rollout)
        } catch {
            switch error {
            case .malformed(let why): return Self.text(.badRequest, why)
            case .refused(let why): return Self.text(.forbidden, why)
            }
        }
        return try AdminRoutes.encoded(engine.status(id), status: created ? .created : .accepted)
    }

    /// `?outcomes=1` (or `true`): include every device's outcome.
    static func wantsOutcomes(_ request: Request) -> Bool {
        guard let value = request.uri.queryParameters.get("outcomes") else { return false }
        return value == "1" || value == "true"
    }

    static func off() -> Response {
        text(
            .serviceUnavailable,
            "rollouts are off on this gateway: it needs gossip, a site trust file (otamesh keys site-trust; site.trust) and a trusted TUF root (--trust-root FILE, or otamesh import --root FILE)"
        )
    }

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}
