import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import OTAMeshRollout

/// The site dashboard (docs/dashboard.md) on the admin listener:
///
/// | route | credential | what |
/// |---|---|---|
/// | `GET /ui/`, `/ui/app.js`, `/ui/app.css` | none (they hold no data) | the page, embedded in the binary, with a strict Content-Security-Policy |
/// | `GET /api/v1/whoami` | read | `{"role": "admin"}` or `"read"`: what the page may offer |
/// | `GET /api/v1/dashboard` | read | the ``DashboardSnapshot`` |
/// | `GET /api/v1/events` | read | server-sent events: `snapshot` with the whole snapshot at once and whenever it changes (checked each second), a comment every 5 s; the stream ends after ``streamLifetime`` and the page reconnects |
/// | `GET /api/v1/reports/fleet?format=json\|csv` | read | every device of the site with its version and last outcome |
/// | `GET /api/v1/reports/rollouts/{id}?format=json\|csv` | read | one rollout's report: per stage, per gateway, per device |
struct DashboardRoutes: AdminRouteSet {
    let tokens: AdminTokens
    /// Builds the current snapshot (the agent's parts, read under their own locks).
    let snapshot: @Sendable () -> DashboardSnapshot
    /// One rollout with every device's attempt, for its report.
    let rollout: @Sendable (String) -> RolloutStatus?

    /// How long one event stream lasts before the page reconnects: a gateway that stops
    /// never waits long for an open page.
    static let streamLifetime: Duration = .seconds(20)

    func registerOpen(on router: Router<AdminRequestContext>) {
        // The router matches `/ui` and `/ui/` alike; the page names its assets by absolute path.
        router.get("/ui") { _, _ -> Response in Self.asset(DashboardAssets.html, type: "text/html; charset=utf-8") }
        router.get("/ui/app.css") { _, _ -> Response in Self.asset(DashboardAssets.css, type: "text/css; charset=utf-8") }
        router.get("/ui/app.js") { _, _ -> Response in Self.asset(DashboardAssets.script, type: "text/javascript; charset=utf-8") }
    }

    func register(on api: AdminAPIGroup) {
        api.get("whoami") { request, _ -> Response in
            let header = request.headers[.authorization]
            let role = header.flatMap(AdminTokens.bearerToken).flatMap(tokens.role(of:)).map { $0 == .admin ? "admin" : "read" } ?? "admin"
            return AdminRoutes.json(["role": role])
        }
        api.get("dashboard") { _, _ -> Response in
            try AdminRoutes.encoded(snapshot())
        }
        api.get("events") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-store"
            let body = ResponseBody { [snapshot] writer in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                var last: Data?
                let clock = ContinuousClock()
                let end = clock.now + Self.streamLifetime
                var ticks = 0
                while clock.now < end, !Task.isCancelled {
                    let now = try encoder.encode(snapshot())
                    if now != last {
                        last = now
                        try await writer.write(ByteBuffer(string: "event: snapshot\ndata: " + String(decoding: now, as: UTF8.self) + "\n\n"))
                    } else if ticks % 5 == 0 {
                        try await writer.write(ByteBuffer(string: ": alive\n\n"))
                    }
                    ticks += 1
                    try await Task.sleep(for: .seconds(1))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: headers, body: body)
        }
        api.get("reports/fleet") { request, _ -> Response in
            let report = FleetReport(snapshot())
            return try Self.report(request, json: report, csv: report.csv, name: "fleet")
        }
        api.get("reports/rollouts/{id}") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let status = rollout(id) else { return SiteRoutes.text(.notFound, "rollout \(id): not known on this gateway") }
            let report = RolloutReport(status)
            return try Self.report(request, json: report, csv: report.csv, name: "rollout-\(id)")
        }
    }

    static func report(_ request: Request, json: some Encodable, csv: String, name: String) throws -> Response {
        switch request.uri.queryParameters.get("format") ?? "json" {
        case "json":
            var response = try AdminRoutes.encoded(json)
            response.headers[.contentDisposition] = "attachment; filename=\"\(name).json\""
            return response
        case "csv":
            return Response(
                status: .ok,
                headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name).csv\""],
                body: .init(byteBuffer: ByteBuffer(string: csv)))
        case let other:
            return SiteRoutes.text(.badRequest, "format \(other): json or csv")
        }
    }

    /// A page asset with the headers that keep it safe: nothing but this gateway's own script and
    /// style runs or loads, no framing, no sniffing.
    static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: type,
                .contentSecurityPolicy:
                    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                .xContentTypeOptions: "nosniff",
                .init("Referrer-Policy")!: "no-referrer",
                .cacheControl: "no-cache",
            ],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

extension AdminRouteSet {
    /// Routes outside `/api/v1`, with no credential (none by default).
    func registerOpen(on router: Router<AdminRequestContext>) {}
}
