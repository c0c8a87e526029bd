import Foundation

/// A generic device of the gateway's JSON manifest route (no vendor firmware to copy: this is
/// the behaviour the route documents). Per poll:
/// 1. `GET /v1/devices/{id}/update?hardware=H&version=V` (HTTP/1.1, `Connection: close`):
///    204 = no update; 200 = `{"sha256","size","url","version"}`;
/// 2. `GET url` (absolute; https with `--ca`), 200 with Content-Length = `size`;
/// 3. the flash is read back and its size and SHA-256 compared with the manifest; then reboot and
///    report `version` on the next poll.
/// A power loss or a dropped link starts the download over.
struct GenericDevice: SteppedDevice {
    let identity: DeviceIdentity
    private(set) var version: String
    var faults: FaultState

    static let userAgent = "otamesh-devicesim-generic/1"

    struct Manifest: Decodable, Equatable {
        var sha256: String
        var size: Int
        var url: String
        var version: String
    }

    init(identity: DeviceIdentity, settings: RunSettings) {
        self.identity = identity
        version = settings.version
        faults = FaultState(plan: settings.faults, seed: settings.seed, device: identity.index)
    }

    static func request(_ endpoint: Endpoint, accept: String) -> [UInt8] {
        Array(
            "GET \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: \(userAgent)\r\nAccept: \(accept)\r\nConnection: close\r\n\r\n".utf8
        )
    }

    mutating func update(_ context: PollContext) async throws -> PollOutcome {
        let settings = context.settings
        let target = "/v1/devices/\(identity.id)/update?hardware=\(QueryEncoding.encode(settings.hardware))&version=\(QueryEncoding.encode(version))"
        let endpoint = context.endpoint(target: target, tls: false)
        let (status, body): (Int, [UInt8]) = try await context.exchange(endpoint, request: Self.request(endpoint, accept: "application/json")) { io, head in
            if head.status == 204 { return (204, []) }
            var body: [UInt8] = []
            var reader = BodyReader(imageOffset: 0, rate: nil)
            var none = FaultState(plan: FaultPlan(), seed: 0, device: 0)
            try await reader.read(&io, length: head.contentLength, faults: &none) { body += $0 }
            return (head.status, body)
        }
        context.decided(status: status)
        switch status {
        case 204: return .noUpdate(reason: "204 No Content")
        case 200: break
        default: return .failed(stage: "check", reason: "manifest answered \(status)", code: status)
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(body))
        } catch {
            return .failed(stage: "check", reason: "manifest is not the documented JSON: \(error)", code: nil)
        }
        guard let url = Endpoint.parse(manifest.url) else {
            return .failed(stage: "download", reason: "manifest url '\(manifest.url)' is not absolute", code: nil)
        }
        guard manifest.size > 0 else { return .failed(stage: "download", reason: "manifest size \(manifest.size)", code: nil) }
        faults.beginAttempt(imageLength: manifest.size)
        var flash = FlashPartition(capacity: manifest.size, corruptAt: faults.corruptionOffset(imageLength: manifest.size))
        let problem: String? = try await context.exchange(url, request: Self.request(url, accept: "*/*")) { io, head in
            guard head.status == 200 else { return "firmware answered \(head.status)" }
            guard let length = head.contentLength else { return "firmware has no Content-Length" }
            guard length == manifest.size else { return "firmware is \(length) bytes, manifest says \(manifest.size)" }
            var reader = BodyReader(imageOffset: 0, rate: faults.plan.rate)
            defer { context.bytes += reader.delivered }
            try await reader.read(&io, length: length, faults: &faults) { chunk in
                flash.write(chunk, at: flash.bytes.count)
            }
            return nil
        }
        if let problem { return .failed(stage: "download", reason: problem, code: nil) }
        // Read the flash back: size and SHA-256 must match the manifest.
        let digest = ImageFacts.sha256Hex(flash.bytes)
        guard flash.bytes.count == manifest.size, digest == manifest.sha256.lowercased() else {
            return .failed(stage: "verify", reason: "flash SHA-256 \(digest) ≠ manifest \(manifest.sha256)", code: nil)
        }
        let from = version
        version = manifest.version.isEmpty ? "sha256:" + String(digest.prefix(12)) : manifest.version
        return .updated(from: from, to: version)
    }
}
