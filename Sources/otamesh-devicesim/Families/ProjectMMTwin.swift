import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How a projectMM twin misbehaves (`serve --fail`).
enum ProjectMMFault: String, CaseIterable, Sendable {
    case none
    /// `POST /api/firmware/url` answers 501 (a platform without OTA), 400 or 500.
    case refuse501 = "refuse-501", refuse400 = "refuse-400", refuse500 = "refuse-500"
    /// Power lost half-way through the download: the port closes, the device boots the old firmware.
    case dieMidTransfer = "die-mid-transfer"
    /// Takes the whole image, reboots, and comes back running the old version (a failed boot).
    case rebootOld = "reboot-old"
    /// Takes the image and comes back with the new version but another firmware variant.
    case wrongVariant = "wrong-variant"
}

/// The twin's timings (milliseconds) and identity.
struct ProjectMMSettings: Sendable {
    var version: String
    var variant: String
    /// Version the device reports after installing an image that embeds none.
    var newVersion: String?
    var fault: ProjectMMFault
    /// Time between status steps (starting → downloading → flashing), and the delay before the
    /// restart once the image is committed (600 ms on the real firmware).
    var stepMS: Int
    var rebootDelayMS: Int
    /// How long the port stays closed while the device restarts.
    var rebootMS: Int
    /// Body bytes per second read from the image server (nil: as fast as it comes).
    var rate: Int?
    var timeout: Duration
}

/// One emulated projectMM device: an HTTP server with `GET /api/state` and
/// `POST /api/firmware/url`, which downloads the image it is given (real HTTP GET), walks the
/// phases starting → downloading → flashing → rebooting, verifies the image (length against
/// Content-Length, and an ESP32 app image for its chip), closes its port while it "reboots"
/// and comes back reporting the new `version` and `firmware` variant.
actor ProjectMMTwin: RebootingHTTPTwin {
    let id: String
    let host: String
    let settings: ProjectMMSettings
    let transport: Transport
    let sink: EventSink
    var lives: TwinLives

    private var version: String
    private var firmware: String
    private var status = "idle"
    private var bytes = 0
    private var total = 0
    private var busy = false
    private var pendingBoot: (version: String, firmware: String)?
    private var ready: (@Sendable (Int) -> Void)?

    init(id: String, host: String, port: Int, settings: ProjectMMSettings, transport: Transport, sink: EventSink) {
        self.id = id
        self.host = host
        lives = TwinLives(port: port)
        self.settings = settings
        self.transport = transport
        self.sink = sink
        version = settings.version
        firmware = settings.variant
    }

    var rebootMS: Int { settings.rebootMS }

    nonisolated func makeHandler() -> any ChannelHandler & Sendable { TwinRequestHandler(twin: self, route: ProjectMMRoutes.answer) }

    /// Serves until `stop()`; every reboot closes the port for ``ProjectMMSettings/rebootMS``.
    /// `ready` gets the bound port of the first life.
    func run(ready: @Sendable @escaping (Int) -> Void) async throws {
        self.ready = ready
        try await serveLives()
    }

    func lifeBegan(_ life: Int) {
        if life == 0 {
            ready?(port)
            event("listening", [("address", "\(host):\(port)"), ("version", version), ("firmware", firmware)])
        } else {
            event("booted", [("address", "\(host):\(port)"), ("version", version), ("firmware", firmware)])
        }
    }

    func lifeRebooted() {
        if let boot = pendingBoot {
            version = boot.version
            firmware = boot.firmware
        }
        pendingBoot = nil
        status = "idle"
        busy = false
    }

    private func restart(into boot: (version: String, firmware: String)?) {
        pendingBoot = boot
        event("rebooting", [("into", boot?.version ?? version)])
        wakeForReboot()
    }

    /// The `/api/state` answer: the FirmwareUpdate module with its status slot and controls.
    func stateJSON() -> String {
        let statusField = status == "idle" ? "" : ",\"status\":\(JSONLine.quote(status)),\"severity\":\"\(status.hasPrefix("error:") ? "error" : "status")\""
        return "{\"modules\":[{\"name\":\"System\",\"type\":\"SystemModule\",\"role\":\"system\",\"enabled\":true,\"controls\":["
            + "{\"name\":\"firmware\",\"type\":\"display\",\"value\":\(JSONLine.quote(firmware)),\"readonly\":true}]},"
            + "{\"name\":\"FirmwareUpdate\",\"type\":\"FirmwareUpdateModule\",\"role\":\"system\",\"enabled\":true\(statusField),\"controls\":["
            + "{\"name\":\"version\",\"type\":\"display\",\"value\":\(JSONLine.quote(version)),\"readonly\":true},"
            + "{\"name\":\"firmware\",\"type\":\"display\",\"value\":\(JSONLine.quote(firmware)),\"readonly\":true},"
            + "{\"name\":\"update_pct\",\"type\":\"progress\",\"value\":\(bytes),\"max\":\(total),\"readonly\":true}]}]}"
    }

    /// `POST /api/firmware/url`: (status, body).
    func firmwareURL(_ body: [UInt8]) -> (Int, String) {
        let url = (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["url"] as? String
        event("post", [("url", url ?? "")])
        switch settings.fault {
        case .refuse501: return (501, "{\"error\":\"OTA not supported on this platform\"}")
        case .refuse400: return (400, "{\"error\":\"missing or invalid url\"}")
        case .refuse500: return (500, "{\"error\":\"task create failed\"}")
        default: break
        }
        guard let url, url.hasPrefix("http://") || url.hasPrefix("https://"), let endpoint = Endpoint.parse(url) else {
            return (400, "{\"error\":\"missing or invalid url\"}")
        }
        status = "starting"
        bytes = 0
        if !busy {
            busy = true
            Task { await self.update(endpoint) }
        }
        return (202, "{\"ok\":true}")
    }

    private func fail(_ reason: String) {
        status = "error: " + reason
        busy = false
        event("failed", [("reason", reason)])
    }

    private func update(_ endpoint: Endpoint) async {
        try? await Task.sleep(for: .milliseconds(settings.stepMS))
        status = "downloading"
        try? await Task.sleep(for: .milliseconds(settings.stepMS))
        let image: [UInt8]
        do {
            let result = try await Self.download(
                endpoint, transport: transport, settings: settings,
                began: { await self.began(total: $0) }, progress: { await self.progress($0) })
            if result.died {
                event("power-loss", [("at", String(result.image.count))])
                restart(into: nil)
                return
            }
            if let problem = result.problem {
                fail(problem)
                return
            }
            image = result.image
        } catch TransferError.connect {
            fail("ota begin ESP_ERR_HTTP_CONNECT")
            return
        } catch {
            fail("ota perform ESP_ERR_HTTP_EOF (\(error))")
            return
        }
        let chip = String(firmware.split(separator: "-").first ?? "esp32")
        if let problem = FlashVerifier.problem(image, chip: chip) {
            fail("ota finish ESP_ERR_OTA_VALIDATE_FAILED (\(problem))")
            return
        }
        status = "rebooting"
        event("installed", [("bytes", String(image.count)), ("md5", ImageFacts.md5Hex(image))])
        try? await Task.sleep(for: .milliseconds(settings.rebootDelayMS))
        let newVersion = FlashVerifier.embeddedVersion(image) ?? settings.newVersion ?? ("md5:" + String(ImageFacts.md5Hex(image).prefix(12)))
        switch settings.fault {
        case .rebootOld:
            restart(into: nil)
        case .wrongVariant:
            restart(into: (newVersion, ProjectMMVariantText.other(than: firmware)))
        default:
            restart(into: (newVersion, firmware))
        }
    }

    /// GETs the image as esp_https_ota does (one request, Content-Length required); the
    /// die-mid-transfer fault stops at half of it.
    nonisolated static func download(
        _ endpoint: Endpoint, transport: Transport, settings: ProjectMMSettings,
        began: @Sendable (Int) async -> Void, progress: @Sendable (Int) async -> Void
    ) async throws -> (image: [UInt8], died: Bool, problem: String?) {
        let request = Array(
            "GET \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: ESP32 HTTP Client/1.0\r\nConnection: close\r\n\r\n".utf8)
        return try await transport.withConnection(to: endpoint, idleTimeout: settings.timeout) { io in
            try await io.send(request)
            let head = try await io.readHead()
            guard head.status == 200 else { return ([], false, "ota begin ESP_FAIL (HTTP \(head.status))") }
            guard let length = head.contentLength, length > 0 else { return ([], false, "ota begin ESP_ERR_INVALID_SIZE") }
            await began(length)
            let start = ContinuousClock.now
            var image: [UInt8] = []
            while image.count < length {
                guard let chunk = try await io.read(max: min(16 << 10, length - image.count), phase: "download") else { break }
                image += chunk
                if settings.fault == .dieMidTransfer, image.count >= length / 2 { return (image, true, nil) }
                await progress(image.count)
                if let rate = settings.rate {
                    try? await Task.sleep(until: start + .milliseconds(Int64(image.count) * 1000 / Int64(rate)), clock: .continuous)
                }
            }
            return (image, false, image.count == length ? nil : "incomplete download")
        }
    }

    private func began(total: Int) {
        self.total = total
        status = "flashing"
    }

    private func progress(_ count: Int) { bytes = count }
}

enum ProjectMMVariantText {
    /// A variant not OTA-compatible with `variant` (for the wrong-variant fault).
    static func other(than variant: String) -> String {
        variant.hasPrefix("esp32s3") ? "esp32" : "esp32s3-n16r8"
    }
}

/// projectMM's routes: `GET /api/state` and `POST /api/firmware/url`, one request per
/// connection (`Connection: close`, as projectMM answers), CORS open like the firmware's.
enum ProjectMMRoutes {
    static func answer(_ twin: ProjectMMTwin, _ head: HTTPRequestHead, _ body: [UInt8]) async -> TwinAnswer {
        let (status, text): (Int, String)
        switch (head.method, head.uri.split(separator: "?").first.map(String.init) ?? "") {
        case (.GET, "/api/state"): (status, text) = (200, await twin.stateJSON())
        case (.POST, "/api/firmware/url"): (status, text) = await twin.firmwareURL(body)
        default: (status, text) = (404, "{\"error\":\"not found\"}")
        }
        return TwinAnswer(status: status, text: text, extra: [("Access-Control-Allow-Origin", "*")])
    }
}
