import OTAMeshCommon
import OTAMeshFirmware

/// The device families `run` emulates: every pull family (``DeviceFamily/pull``).
typealias Family = DeviceFamily

extension DeviceFamily {
    /// The pull families `run` emulates: all of them (hawkBit DDI as SWUpdate's suricatta).
    static let emulated: [DeviceFamily] = pull

    /// Families whose real firmware talks HTTPS only.
    var usesTLS: Bool { self == .espHTTPSOTA || self == .wiphone }
}

/// Everything a device needs from the run (one value, shared by every device task).
struct RunSettings: Sendable {
    var family: Family
    /// The gateway's plain-HTTP device port.
    var gateway: Endpoint
    /// The gateway's TLS device port (esp-https-ota, wiphone), nil with `--insecure-http`.
    var tlsGateway: Endpoint?
    var insecureHTTP: Bool
    var version: String
    var hardware: String
    /// The devices' read timeout (idle: no bytes for this long).
    var timeout: Duration
    var maxRequestSize: Int
    var otaResumption: Bool
    var faults: FaultPlan
    var seed: UInt64
    var macBase: [UInt8]
    var freeSpace: Int?
    var chipSize: Int
    var sdkVersion: String?
    /// The version a device reports after installing an image that carries none (ESP8266).
    var newVersion: String?
    var fotaStartSlot: FOTASlotChoice
    /// httpUpdate families: the sketch also asks for its filesystem (`--filesystem`).
    var filesystem: DeviceFilesystem? = nil
    /// hawkBit DDI: the `Authorization` header value (`GatewayToken …`), nil: anonymous.
    var ddiAuthorization: String? = nil
    var ddiTenant = "DEFAULT"
}

/// What a poll's filesystem check (`updateFS`) ended with.
enum FilesystemOutcome: Sendable, Equatable {
    /// 304: the filesystem holds the configuration the gateway has for the device.
    case current(String)
    /// A new image was written and mounted: what the device read.
    case configured(DeviceFilesystem.Mounted)
    case failed(String)
}

enum FOTASlotChoice: String, Sendable, CaseIterable {
    case user1, user2, mixed
}

/// What one poll ended with.
enum PollOutcome: Sendable, Equatable {
    /// The device asked and there was nothing (newer) for it.
    case noUpdate(reason: String)
    /// Installed and rebooted into `to`.
    case updated(from: String, to: String)
    /// Something failed; the device keeps running `version`.
    case failed(stage: String, reason: String, code: Int?)
    /// The device made no request this time (e.g. WiPhone's boot after an update).
    case skipped(reason: String)
    /// Power was lost mid-download; the device rebooted.
    case powerLoss(atByte: Int)
}

/// A family whose poll is one throwing step, `update`, with its faults kept across polls.
protocol SteppedDevice: EmulatedDevice {
    var faults: FaultState { get set }
    mutating func update(_ context: PollContext) async throws -> PollOutcome
}

extension SteppedDevice {
    mutating func poll(_ context: PollContext) async -> PollReport {
        var report = PollReport()
        report.reported = version
        do { report.outcome = try await update(context) } catch { report.outcome = PollOutcome(thrown: error, context: context) }
        report.finish(context, faults: &faults)
        return report
    }
}

/// An error a family throws that names the stage it failed at.
protocol StagedFailure: Error {
    var stage: String { get }
    var reason: String { get }
}

extension PollOutcome {
    /// What a poll that threw ends with: a power loss, or a failure at the stage it reached —
    /// a ``StagedFailure`` names its own; a transfer error is `check` before the device decided,
    /// else `download`; anything else `check`.
    init(thrown error: any Error, context: PollContext) {
        switch error {
        case let staged as any StagedFailure: self = .failed(stage: staged.stage, reason: staged.reason, code: nil)
        case TransferError.powerLoss(let at): self = .powerLoss(atByte: at)
        case let transfer as TransferError: self = .failed(stage: context.decisionMS == nil ? "check" : "download", reason: "\(transfer)", code: nil)
        default: self = .failed(stage: "check", reason: "\(error)", code: nil)
        }
    }
}

/// One poll as the fleet reports it.
struct PollReport: Sendable {
    /// Time from the first request to the device's decision (update or not), nil without requests.
    var latencyMS: Double?
    /// Status of the deciding response.
    var status: Int?
    /// Requests made in this poll.
    var requests = 0
    /// Body bytes received in this poll.
    var bytes = 0
    /// Milliseconds the whole poll took (check, download, verify).
    var totalMS = 0.0
    /// What the device reported about itself (version / MD5) in its first request.
    var reported: String?
    var outcome: PollOutcome = .noUpdate(reason: "")
    /// Injected faults that fired in this poll: (kind, image offset).
    var faults: [(kind: String, offset: Int)] = []
    /// The filesystem check after the firmware check, when the device has one.
    var filesystem: FilesystemOutcome?
}

/// A device of one family: its state persists across polls ("flash"), its RAM does not
/// survive a power loss.
protocol EmulatedDevice {
    var identity: DeviceIdentity { get }
    /// The version the device runs now (as the summary and events report it).
    var version: String { get }
    mutating func poll(_ context: PollContext) async -> PollReport
}

/// Per-poll helpers: counts requests and bytes, times the decision, opens connections.
extension PollReport {
    /// Fills in what every family reports the same way once a poll is over.
    mutating func finish(_ context: PollContext, faults: inout FaultState) {
        self.faults = faults.takeFired()
        latencyMS = context.decisionMS
        status = context.status
        requests = context.requests
        bytes = context.bytes
    }
}

final class PollContext {
    let settings: RunSettings
    let transport: Transport
    private let clock = ContinuousClock()
    private var firstRequest: ContinuousClock.Instant?
    private(set) var decisionMS: Double?
    private(set) var requests = 0
    var bytes = 0
    var status: Int?

    init(settings: RunSettings, transport: Transport) {
        self.settings = settings
        self.transport = transport
    }

    /// The device has decided (update or not): the poll's latency is measured up to here.
    func decided(status: Int?) {
        guard decisionMS == nil else { return }
        self.status = status
        if let firstRequest { decisionMS = Self.ms(clock.now - firstRequest) }
    }

    /// Connects, sends `request` as is, reads the response head and hands both to `body`.
    func exchange<R: Sendable>(
        _ endpoint: Endpoint, request: [UInt8], idleTimeout: Duration? = nil, receiveBuffer: Int? = nil,
        _ body: (inout ConnectionIO, ResponseHead) async throws -> R
    ) async throws -> R {
        if firstRequest == nil { firstRequest = clock.now }
        requests += 1
        // A slow link (--rate) keeps the socket buffers small, so the gateway feels the device's
        // slow reading through TCP back-pressure instead of filling megabytes of buffers.
        let buffer = receiveBuffer ?? (settings.faults.rate != nil || settings.faults.stallAtByte != nil ? 4096 : nil)
        return try await transport.withConnection(
            to: endpoint, idleTimeout: idleTimeout ?? settings.timeout, receiveBuffer: buffer
        ) { io in
            try await io.send(request)
            let head = try await io.readHead()
            return try await body(&io, head)
        }
    }

    /// Like ``exchange(_:request:idleTimeout:receiveBuffer:_:)`` but hands over the connection
    /// before anything is read (for firmwares that parse the raw response themselves).
    func rawExchange<R: Sendable>(
        _ endpoint: Endpoint, request: [UInt8], _ body: (inout ConnectionIO) async throws -> R
    ) async throws -> R {
        if firstRequest == nil { firstRequest = clock.now }
        requests += 1
        return try await transport.withConnection(to: endpoint, idleTimeout: settings.timeout) { io in
            try await io.send(request)
            return try await body(&io)
        }
    }

    /// The endpoint a family uses for `target` (TLS gateway unless `--insecure-http`).
    func endpoint(target: String, tls: Bool) -> Endpoint {
        if tls, let tlsGateway = settings.tlsGateway { return tlsGateway.with(target: target) }
        return settings.gateway.with(target: target)
    }

    static func ms(_ duration: Duration) -> Double {
        let (s, atto) = duration.components
        return Double(s) * 1000 + Double(atto) / 1e15
    }
}

/// An emulated flash partition: the bytes written so far, with at most one corrupted byte.
struct FlashPartition {
    private(set) var bytes: [UInt8] = []
    private var corruptAt: Int?

    init(capacity: Int = 0, corruptAt: Int? = nil) {
        bytes.reserveCapacity(capacity)
        self.corruptAt = corruptAt
    }

    /// Appends image bytes at `offset` (must be the current end).
    mutating func write(_ chunk: ArraySlice<UInt8>, at offset: Int) {
        precondition(offset == bytes.count, "flash writes are sequential")
        let start = bytes.count
        bytes += chunk
        if let corruptAt, corruptAt >= start, corruptAt < bytes.count {
            bytes[corruptAt] ^= 0xFF  // the flash write went wrong
        }
    }

    /// Keeps only the first `count` bytes (what an ota_resumption restart rewrites after).
    mutating func truncate(to count: Int) {
        if bytes.count > count { bytes.removeLast(bytes.count - count) }
    }

    mutating func erase() { bytes.removeAll(keepingCapacity: true) }
}

/// The firmware-side image check after writing (what esp_image_verify / the boot ROM / a
/// SHA-256 compare would say), using OTAMeshFirmware's inspector.
enum FlashVerifier {
    /// nil when the flashed image is acceptable for `chip` (`esp8266` or an ESP32-family name);
    /// otherwise the reason it would not boot.
    static func problem(_ image: [UInt8], chip: String) -> String? {
        let report = ImageInspector.inspect(image)
        if chip == "esp8266" {
            guard report.format == .esp8266 else { return "not an ESP8266 image (\(report.format.rawValue))" }
        } else {
            guard report.format == .esp32App else { return "not an ESP32 app image (\(report.format.rawValue))" }
            if let wanted = ESPChip.named(chip), let got = report.chip, got != wanted.name {
                return "image is for \(got), device is \(wanted.name) (chip id mismatch)"
            }
        }
        guard report.valid else { return "image verification failed: " + report.problems.joined(separator: "; ") }
        return nil
    }

    /// The version embedded in the image (ESP32 app description), if any.
    static func embeddedVersion(_ image: [UInt8]) -> String? {
        ImageInspector.inspect(image).version
    }
}
