import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import OTAMeshDevices
import OTAMeshRollout
import ServiceLifecycle

/// Calls `alerts.webhook` for rollout events (approved, halted, completed, aborted): a POST of
/// the event as JSON, retried with backoff after network failures and 5xx answers, given up
/// after a 4xx or ``maxAttempts``. Every gateway with a webhook reports what it sees; the
/// event's `id` is the same on every gateway, so the receiver drops repeats.
final class WebhookNotifier: Service, Sendable {
    static let maxAttempts = 6
    static let maxQueued = 256

    let url: String
    let logger: Logger
    let stream: AsyncStream<RolloutEvent>
    let continuation: AsyncStream<RolloutEvent>.Continuation
    let delivered = Counter(label: "otamesh_alert_webhooks_total", dimensions: [("result", "delivered")])
    let dropped = Counter(label: "otamesh_alert_webhooks_total", dimensions: [("result", "failed")])

    init(url: String, logger: Logger) {
        self.url = url
        self.logger = logger
        (stream, continuation) = AsyncStream.makeStream(of: RolloutEvent.self, bufferingPolicy: .bufferingNewest(Self.maxQueued))
    }

    func send(_ events: [RolloutEvent]) {
        for event in events { continuation.yield(event) }
    }

    func run() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        await cancelWhenGracefulShutdown {
            for await event in self.stream {
                await self.deliver(event, client: client)
            }
        }
        continuation.finish()
        try? await client.shutdown()
    }

    /// Seconds to wait before attempt `n` (1-based, n ≥ 2): 1, 2, 4, 8, 16.
    static func backoff(_ attempt: Int) -> Double { Double(1 << min(attempt - 2, 4)) }

    func deliver(_ event: RolloutEvent, client: HTTPClient) async {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let body = try? encoder.encode(event) else { return }
        var why = ""
        for attempt in 1...Self.maxAttempts {
            if attempt > 1 {
                do { try await Task.sleep(for: .seconds(Self.backoff(attempt))) } catch { return }
            }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "otamesh/\(OTAMeshVersion.current)")
            request.body = .bytes(ByteBuffer(bytes: Array(body)))
            do {
                let response = try await client.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if (200..<300).contains(response.status.code) {
                    delivered.increment()
                    logger.info("alert webhook delivered", metadata: ["alert.id": "\(event.id)", "alert.attempts": "\(attempt)"])
                    return
                }
                why = "HTTP \(response.status.code)"
                if (400..<500).contains(response.status.code) { break }  // the receiver refuses it: retrying changes nothing
            } catch {
                why = "\(error)"
            }
        }
        dropped.increment()
        logger.warning("alert webhook failed", metadata: ["alert.id": "\(event.id)", "alert.url": "\(url)", "error": "\(why)"])
    }
}

/// Rollout and fleet gauges for `/metrics`: per rollout its mode, stage and device counts; this
/// gateway's devices by family and version. Device-reported versions are hostile: bounded in
/// length and character set, and at most ``maxVersionSeries`` series (the rest are `other`).
final class RolloutMetrics: Sendable {
    static let maxVersionSeries = 64

    struct Seen: Sendable {
        var rollouts: Set<String> = []
        var devices: Set<[String]> = []
    }
    let seen = NIOLockedValueBox(Seen())

    func update(statuses: [RolloutStatus], devices: [DeviceRecord]) {
        var rollouts: Set<String> = []
        for status in statuses {
            rollouts.insert(status.id)
            for mode in RolloutView.Mode.allCases {
                Gauge(label: "otamesh_rollout_mode", dimensions: [("rollout", status.id), ("mode", mode.rawValue)]).record(status.mode == mode.rawValue ? 1 : 0)
            }
            Gauge(label: "otamesh_rollout_stage", dimensions: [("rollout", status.id)]).record(status.plan == nil ? 0 : status.stage + 1)
            let last = status.stages.last
            for (state, value) in [
                ("targeted", last?.targeted ?? 0), ("succeeded", status.finished - status.failed), ("failed", status.failed),
                ("in_flight", status.stages.last?.inFlight ?? 0),
            ] {
                Gauge(label: "otamesh_rollout_devices", dimensions: [("rollout", status.id), ("state", state)]).record(value)
            }
        }
        var counts: [[String]: Int] = [:]
        for device in devices {
            let family = Self.label(device.family.rawValue)
            var key = [family, Self.label(device.version ?? "unknown")]
            if counts[key] == nil, counts.count >= Self.maxVersionSeries { key = [family, "other"] }
            counts[key, default: 0] += 1
        }
        let gone = seen.withLockedValue { seen -> Set<[String]> in
            defer { seen.devices = Set(counts.keys); seen.rollouts = rollouts }
            return seen.devices.subtracting(counts.keys)
        }
        for key in gone { Gauge(label: "otamesh_devices", dimensions: [("family", key[0]), ("version", key[1])]).record(0) }
        for (key, count) in counts { Gauge(label: "otamesh_devices", dimensions: [("family", key[0]), ("version", key[1])]).record(count) }
    }

    /// A label value from a device string: printable ASCII, at most 40 characters.
    static func label(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.prefix(40).map { (0x21...0x7E).contains($0.value) && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        return cleaned.isEmpty ? "unknown" : cleaned
    }
}
