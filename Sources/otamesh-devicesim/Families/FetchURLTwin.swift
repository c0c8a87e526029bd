import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How a fetch-url twin misbehaves (`serve --family fetch-url --fail`).
enum FetchURLFault: String, CaseIterable, Sendable {
    case none
    /// The command is answered 403 (OTA disabled on the device).
    case refuse
    /// The download is dropped half-way (the link breaks): the device keeps running its old
    /// firmware and never restarts.
    case dieMidTransfer = "die-mid-transfer"
    /// Takes the whole image, reboots, and comes back running the old version (a failed boot).
    case rebootOld = "reboot-old"
    /// Takes the image and comes back with the new version but another firmware variant.
    case wrongVariant = "wrong-variant"
}

struct FetchURLSettings: Sendable {
    var version: String
    /// The firmware variant the device reports; its chip (before the first `-`) is what images are checked for.
    var variant: String
    var newVersion: String?
    var fault: FetchURLFault
    /// The command the device takes (`POST /ota` by default).
    var method: String
    var path: String
    var username: String?
    var password: String?
    var rebootDelayMS: Int
    var rebootMS: Int
    var timeout: Duration
}

/// One emulated device that only takes "fetch this URL" commands: `METHOD PATH` with the URL
/// in a JSON body (`url`, or the first http(s) string), a form body (`url=`, or the first
/// http(s) value) or the query; it answers 202, GETs the image (Content-Length required),
/// checks it is an ESP app image for its chip, closes its port while it "reboots" and answers
/// `GET /version` with `{"version":…,"variant":…}`. Basic auth when configured (401 otherwise).
actor FetchURLTwin: RebootingHTTPTwin {
    let id: String
    let host: String
    let settings: FetchURLSettings
    let transport: Transport
    let sink: EventSink
    var lives: TwinLives

    private var version: String
    private var variant: String
    private var busy = false
    private var pendingBoot: (version: String, variant: String)?

    init(id: String, host: String, port: Int, settings: FetchURLSettings, transport: Transport, sink: EventSink) {
        self.id = id
        self.host = host
        lives = TwinLives(port: port)
        self.settings = settings
        self.transport = transport
        self.sink = sink
        version = settings.version
        variant = settings.variant
    }

    var rebootMS: Int { settings.rebootMS }

    nonisolated func makeHandler() -> any ChannelHandler & Sendable { TwinRequestHandler(twin: self, route: FetchURLRoutes.answer) }

    func run() async throws { try await serveLives() }

    func lifeBegan(_ life: Int) {
        event(life == 0 ? "listening" : "booted", [("address", "\(host):\(port)"), ("version", version), ("variant", variant)])
    }

    func lifeRebooted() {
        if let boot = pendingBoot {
            version = boot.version
            variant = boot.variant
        }
        pendingBoot = nil
        busy = false
    }

    func authorized(_ header: String?) -> Bool {
        guard let user = settings.username, let password = settings.password else { return true }
        guard let header, header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))) else { return false }
        return String(decoding: data, as: UTF8.self) == "\(user):\(password)"
    }

    func versionJSON() -> String { "{\"version\":\(JSONLine.quote(version)),\"variant\":\(JSONLine.quote(variant))}" }

    /// The URL a command carries: in the query (`url=`), a JSON body or a form body.
    static func url(uri: String, contentType: String?, body: [UInt8]) -> String? {
        func isHTTP(_ text: String) -> Bool { text.hasPrefix("http://") || text.hasPrefix("https://") }
        func form(_ text: Substring) -> String? {
            var first: String?
            for pair in text.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map {
                    String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                guard parts.count == 2 else { continue }
                if parts[0] == "url" { return parts[1] }
                if first == nil, isHTTP(parts[1]) { first = parts[1] }
            }
            return first
        }
        if let query = uri.split(separator: "?", maxSplits: 1).dropFirst().first, let url = form(query) { return url }
        let text = String(decoding: body, as: UTF8.self)
        if (contentType ?? "").contains("json") || text.hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
            if let url = object["url"] as? String { return url }
            return object.keys.sorted().compactMap { object[$0] as? String }.first(where: isHTTP)
        }
        return form(Substring(text))
    }

    /// The command: (status, body).
    func command(authorization: String?, uri: String, contentType: String?, body: [UInt8]) -> (Int, String) {
        guard authorized(authorization) else {
            event("unauthorized")
            return (401, "")
        }
        let url = Self.url(uri: uri, contentType: contentType, body: body)
        event("post", [("url", url ?? "")])
        if settings.fault == .refuse { return (403, "{\"error\":\"OTA is disabled on this device\"}") }
        guard let url, let endpoint = Endpoint.parse(url) else { return (400, "{\"error\":\"no http(s) url in the command\"}") }
        guard !busy else { return (409, "{\"error\":\"an update is already running\"}") }
        busy = true
        Task { await self.update(endpoint) }
        return (202, "{\"ok\":true}")
    }

    private func failed(_ reason: String) {
        busy = false
        event("failed", [("reason", reason)])
    }

    private func update(_ endpoint: Endpoint) async {
        let image: [UInt8]
        do {
            let result = try await Self.download(endpoint, transport: transport, timeout: settings.timeout, dropHalfway: settings.fault == .dieMidTransfer)
            if let problem = result.problem { return failed(problem) }
            image = result.image
        } catch {
            return failed("download: \(error)")
        }
        let chip = String(variant.split(separator: "-").first ?? "esp32")
        if let problem = FlashVerifier.problem(image, chip: chip) { return failed("image rejected: \(problem)") }
        event("installed", [("bytes", String(image.count)), ("md5", ImageFacts.md5Hex(image))])
        try? await Task.sleep(for: .milliseconds(settings.rebootDelayMS))
        let newVersion = FlashVerifier.embeddedVersion(image) ?? settings.newVersion ?? ("md5:" + String(ImageFacts.md5Hex(image).prefix(12)))
        switch settings.fault {
        case .rebootOld: pendingBoot = nil
        case .wrongVariant: pendingBoot = (newVersion, ProjectMMVariantText.other(than: variant))
        default: pendingBoot = (newVersion, variant)
        }
        event("rebooting", [("into", pendingBoot?.version ?? version)])
        wakeForReboot()
    }

    /// One GET of the image (Content-Length required); `dropHalfway` closes the link at half.
    nonisolated static func download(
        _ endpoint: Endpoint, transport: Transport, timeout: Duration, dropHalfway: Bool
    ) async throws
        -> (image: [UInt8], problem: String?)
    {
        let request = Array(
            "GET \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: ESP32 HTTP Client/1.0\r\nConnection: close\r\n\r\n".utf8)
        return try await transport.withConnection(to: endpoint, idleTimeout: timeout) { io in
            try await io.send(request)
            let head = try await io.readHead()
            guard head.status == 200 else { return ([], "HTTP \(head.status) for the image") }
            guard let length = head.contentLength, length > 0 else { return ([], "no Content-Length for the image") }
            var image: [UInt8] = []
            while image.count < length {
                guard let chunk = try await io.read(max: min(16 << 10, length - image.count), phase: "download") else { break }
                image += chunk
                if dropHalfway, image.count >= length / 2 { return (image, "download dropped at \(image.count) of \(length) bytes") }
            }
            return (image, image.count == length ? nil : "incomplete download: \(image.count) of \(length) bytes")
        }
    }
}

/// The fetch-URL device's routes: its command (`--method`, `--path`) and `GET /version`.
enum FetchURLRoutes {
    static func answer(_ twin: FetchURLTwin, _ head: HTTPRequestHead, _ body: [UInt8]) async -> TwinAnswer {
        let settings = twin.settings
        let (status, text): (Int, String)
        let path = head.uri.split(separator: "?").first.map(String.init) ?? ""
        if head.method.rawValue == settings.method, path == settings.path {
            (status, text) = await twin.command(
                authorization: head.headers.first(name: "Authorization"), uri: head.uri,
                contentType: head.headers.first(name: "Content-Type"), body: body)
        } else if head.method == .GET, path == "/version" {
            (status, text) = await twin.authorized(head.headers.first(name: "Authorization")) ? (200, await twin.versionJSON()) : (401, "")
        } else {
            (status, text) = (404, "{\"error\":\"not found\"}")
        }
        return TwinAnswer(status: status, text: text, extra: status == 401 ? [("WWW-Authenticate", "Basic realm=\"device\"")] : [])
    }
}
