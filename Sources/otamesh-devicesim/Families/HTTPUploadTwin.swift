import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How an HTTP upload twin misbehaves (`serve --family http-upload --fail`).
enum HTTPUploadFault: String, CaseIterable, Sendable {
    case none
    /// Takes the upload and answers `Update error: ERROR[4]: Not Enough Space` (with 200, as
    /// ESP8266HTTPUpdateServer answers errors).
    case updateError = "update-error"
    /// Power lost half-way through the upload: the connection drops, the device boots the old firmware.
    case dieMidTransfer = "die-mid-transfer"
    /// Takes the whole image, answers success, reboots and comes back running the old version.
    case rebootOld = "reboot-old"
}

/// Which upload server the twin runs (`serve --family http-upload --dialect`).
enum HTTPUploadDialect: String, CaseIterable, Sendable {
    /// ESP8266HTTPUpdateServer: `POST /update`, answers 200 with the result text.
    case updateServer = "update-server"
    /// ElegantOTA 3: `GET /ota/start?mode=fr&hash=MD5` begins the update (Update.begin, setMD5),
    /// `POST /ota/upload` writes it and answers `OK` or 400 with Update's error; the device
    /// restarts 2 s later (ElegantOTA.loop()).
    case elegantOTA3 = "elegantota3"
}

struct HTTPUploadSettings: Sendable {
    var dialect = HTTPUploadDialect.updateServer
    var version: String
    /// The ESP chip the images are checked for (esp32, esp32s3, …).
    var chip: String
    var newVersion: String?
    var fault: HTTPUploadFault
    /// Basic auth the form wants (both set), as ESP8266HTTPUpdateServer's `_username/_password`.
    var username: String?
    var password: String?
    var rebootDelayMS: Int
    var rebootMS: Int
}

/// One emulated device with ESP8266HTTPUpdateServer's form: `GET /update` (the form),
/// `POST /update` multipart/form-data (field `firmware`), basic auth when configured (401
/// otherwise, after the body was read, as the real server answers). Success:
/// `Update Success! Rebooting...`, then the port closes for ``HTTPUploadSettings/rebootMS`` and
/// the device comes back with the image's version at `GET /version` (plain text; the real
/// server has none, the firmware around it serves one: docs/devices.md).
actor HTTPUploadTwin: RebootingHTTPTwin {
    let id: String
    let host: String
    let settings: HTTPUploadSettings
    let sink: EventSink
    var lives: TwinLives

    private var version: String
    private var pendingVersion: String?
    private var rebooting = false
    /// ElegantOTA 3: `GET /ota/start` began an update, expecting this MD5 ("" = none given).
    private var begun: String?

    static let successText = "<META http-equiv=\"refresh\" content=\"15;URL=/\">Update Success! Rebooting..."
    /// ElegantOTA 3's page (the real one is a gzip-compressed single-page app).
    static let elegantHTML = "<!DOCTYPE html><html><head><title>ElegantOTA</title></head><body><div id=\"app\"></div></body></html>"
    static let formHTML =
        "<!DOCTYPE html><html><body><form method='POST' action='' enctype='multipart/form-data'>Firmware:<br>"
        + "<input type='file' accept='.bin,.bin.gz' name='firmware'><input type='submit' value='Update Firmware'></form></body></html>"

    init(id: String, host: String, port: Int, settings: HTTPUploadSettings, sink: EventSink) {
        self.id = id
        self.host = host
        lives = TwinLives(port: port)
        self.settings = settings
        self.sink = sink
        version = settings.version
    }

    var rebootMS: Int { settings.rebootMS }

    nonisolated func makeHandler() -> any ChannelHandler & Sendable { HTTPUploadHandler(twin: self) }

    /// Serves until `stop()`; every reboot closes the port for ``HTTPUploadSettings/rebootMS``.
    func run() async throws { try await serveLives() }

    func lifeBegan(_ life: Int) {
        event(life == 0 ? "listening" : "booted", [("address", "\(host):\(port)"), ("version", version)])
    }

    func lifeRebooted() {
        if let pendingVersion { version = pendingVersion }
        pendingVersion = nil
        rebooting = false
    }

    private func restart(into newVersion: String?) {
        guard !rebooting else { return }
        rebooting = true
        pendingVersion = newVersion
        event("rebooting", [("into", newVersion ?? version)])
        wakeForReboot()
    }

    func opened(_ channel: any Channel) -> Bool {
        guard !rebooting, !answering else { return false }
        return track(channel)
    }

    func authorized(_ header: String?) -> Bool {
        guard let user = settings.username, let password = settings.password else { return true }
        guard let header, header.hasPrefix("Basic "), let data = Data(base64Encoded: String(header.dropFirst(6))) else { return false }
        return String(decoding: data, as: UTF8.self) == "\(user):\(password)"
    }

    /// The die-mid-transfer fault: power lost after `received` of `expected` body bytes.
    func receiving(_ received: Int, of expected: Int) -> Bool {
        guard settings.fault == .dieMidTransfer, expected > 0, received >= expected / 2, !rebooting else { return false }
        event("power-loss", [("at", String(received))])
        restart(into: nil)
        return true
    }

    func currentVersion() -> String { version }

    /// ElegantOTA 3's `GET /ota/start?mode=…&hash=…`: (status, text).
    func start(authorization: String?, query: String) -> (Int, String) {
        guard authorized(authorization) else {
            event("unauthorized")
            return (401, "")
        }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            parameters[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        // Update.setMD5 takes exactly 32 characters.
        if let hash = parameters["hash"], hash.count != 32 {
            event("failed", [("reason", "MD5 parameter invalid")])
            return (400, "MD5 parameter invalid")
        }
        if settings.fault == .updateError {
            event("failed", [("reason", "Not Enough Space")])
            return (400, "ERROR[4]: Not Enough Space\n")
        }
        begun = parameters["hash"]?.lowercased() ?? ""
        event("start", [("mode", parameters["mode"] ?? "fr"), ("md5", begun ?? "")])
        return (200, "OK")
    }

    /// `POST /update` (ElegantOTA 3: `POST /ota/upload`) after the whole body: (status, text,
    /// reboot afterwards).
    func upload(authorization: String?, contentType: String?, body: [UInt8]) -> (Int, String, Bool) {
        if settings.dialect == .elegantOTA3 { return elegantUpload(authorization: authorization, contentType: contentType, body: body) }
        guard authorized(authorization) else {
            event("unauthorized")
            return (401, "", false)
        }
        guard let contentType, let file = Self.filePart(contentType: contentType, body: body) else {
            event("failed", [("reason", "no firmware part")])
            return (200, "Update error: ERROR[1]: no firmware part in the form", false)
        }
        event("post", [("bytes", String(file.count))])
        if settings.fault == .updateError {
            event("failed", [("reason", "Not Enough Space")])
            return (200, "Update error: ERROR[4]: Not Enough Space", false)
        }
        if let problem = FlashVerifier.problem(file, chip: settings.chip) {
            event("failed", [("reason", problem)])
            return (200, "Update error: ERROR[11]: \(problem)", false)
        }
        let newVersion = FlashVerifier.embeddedVersion(file) ?? settings.newVersion ?? ("md5:" + String(ImageFacts.md5Hex(file).prefix(12)))
        event("installed", [("bytes", String(file.count)), ("md5", ImageFacts.md5Hex(file))])
        pendingReboot = settings.fault == .rebootOld ? .some(nil) : .some(newVersion)
        // The firmware answers, waits 100 ms inside the handler (serving nothing) and restarts.
        answering = true
        return (200, Self.successText, true)
    }

    /// ElegantOTA 3's upload: Update.write/end of the update `/ota/start` began; `OK` or 400 with
    /// the error text Update.printError gives.
    private func elegantUpload(authorization: String?, contentType: String?, body: [UInt8]) -> (Int, String, Bool) {
        guard authorized(authorization) else {
            event("unauthorized")
            return (401, "", false)
        }
        guard let expected = begun else {
            // No Update.begin: nothing is written, Update.end fails without an error, so the
            // device answers OK and restarts into the firmware it had.
            event("failed", [("reason", "upload without /ota/start: nothing flashed")])
            pendingReboot = .some(nil)
            answering = true
            return (200, "OK", true)
        }
        begun = nil
        guard let contentType, let file = Self.filePart(contentType: contentType, body: body) else {
            event("failed", [("reason", "no file part")])
            return (400, "ERROR[6]: No data in the upload\n", false)
        }
        event("post", [("bytes", String(file.count))])
        let md5 = ImageFacts.md5Hex(file)
        if !expected.isEmpty, md5 != expected {
            event("failed", [("reason", "MD5 mismatch")])
            return (400, "ERROR[7]: MD5 Failed: expected:\(expected), calculated:\(md5)\n", false)
        }
        if let problem = FlashVerifier.problem(file, chip: settings.chip) {
            event("failed", [("reason", problem)])
            return (400, "ERROR[11]: \(problem)\n", false)
        }
        let newVersion = FlashVerifier.embeddedVersion(file) ?? settings.newVersion ?? ("md5:" + String(md5.prefix(12)))
        event("installed", [("bytes", String(file.count)), ("md5", md5)])
        pendingReboot = settings.fault == .rebootOld ? .some(nil) : .some(newVersion)
        // ElegantOTA restarts from its loop() 2 s (the reboot delay) after the answer; the
        // server keeps serving until then.
        return (200, "OK", true)
    }

    private var pendingReboot: String??
    /// Between the success answer and the restart: no new connection is served.
    private var answering = false

    /// After the success answer went out (the firmware waits 100 ms, then restarts).
    func rebootAfterAnswer() async {
        try? await Task.sleep(for: .milliseconds(settings.rebootDelayMS))
        if let boot = pendingReboot { restart(into: boot) }
        pendingReboot = nil
        answering = false
    }

    /// The file of the first form part that is not `filesystem` (ESP8266HTTPUpdateServer flashes
    /// any other field as the sketch).
    static func filePart(contentType: String, body: [UInt8]) -> [UInt8]? {
        guard let range = contentType.range(of: "boundary=") else { return nil }
        let boundary = contentType[range.upperBound...].split(separator: ";").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")) } ?? ""
        guard !boundary.isEmpty else { return nil }
        let delimiter = Array("--\(boundary)".utf8)
        let closing = Array("\r\n--\(boundary)".utf8)
        guard let start = find(delimiter, in: body, from: 0),
            let headEnd = find(Array("\r\n\r\n".utf8), in: body, from: start + delimiter.count)
        else { return nil }
        let head = String(decoding: body[(start + delimiter.count)..<headEnd], as: UTF8.self)
        guard head.contains("filename="), !head.contains("name=\"filesystem\"") else { return nil }
        let dataStart = headEnd + 4
        guard let end = find(closing, in: body, from: dataStart) else { return nil }
        return Array(body[dataStart..<end])
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        var index = from
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }
}

/// One request per connection, as ESP8266WebServer answers uploads (`Connection: close`).
final class HTTPUploadHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let twin: HTTPUploadTwin
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var dead = false

    init(twin: HTTPUploadTwin) { self.twin = twin }

    func channelActive(context: ChannelHandlerContext) {
        let twin = twin
        TwinConnection.active(context) { await twin.opened($0) }
    }

    func channelInactive(context: ChannelHandlerContext) { TwinConnection.inactive(context, twin: twin) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !dead else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            guard body.count < 32 << 20 else { return }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
            let expected = head?.headers.first(name: "Content-Length").flatMap(Int.init) ?? 0
            let received = body.count
            let twin = twin
            let channel = context.channel
            // The device loses power: nothing is answered, the connection drops with the port.
            Task {
                if await twin.receiving(received, of: expected) { channel.close(promise: nil) }
            }
        case .end:
            guard let head else { return }
            let body = body
            let twin = twin
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            Task {
                var reboot = false
                let (status, text): (Int, String)
                let elegant = twin.settings.dialect == .elegantOTA3
                let parts = head.uri.split(separator: "?", maxSplits: 1).map(String.init)
                switch (head.method, parts.first ?? "") {
                case (.GET, "/update"):
                    let page = elegant ? HTTPUploadTwin.elegantHTML : HTTPUploadTwin.formHTML
                    (status, text) = await twin.authorized(head.headers.first(name: "Authorization")) ? (200, page) : (401, "")
                case (.GET, "/ota/start") where elegant:
                    (status, text) = await twin.start(authorization: head.headers.first(name: "Authorization"), query: parts.count > 1 ? parts[1] : "")
                case (.POST, "/update") where !elegant, (.POST, "/ota/upload") where elegant:
                    (status, text, reboot) = await twin.upload(
                        authorization: head.headers.first(name: "Authorization"),
                        contentType: head.headers.first(name: "Content-Type"), body: body)
                case (.GET, "/version"):
                    (status, text) = (200, await twin.currentVersion() + "\n")
                default:
                    (status, text) = (404, "Not found: \(head.uri)")
                }
                loop.execute {
                    Self.respond(bound.value, status: status, text: text)
                }
                if reboot { await twin.rebootAfterAnswer() }
            }
        }
    }

    static func respond(_ context: ChannelHandlerContext, status: Int, text: String) {
        TwinConnection.respond(
            context, status: status, contentType: status == 200 && !text.hasPrefix("<") ? "text/plain" : "text/html",
            text: text, extra: status == 401 ? [("WWW-Authenticate", "Basic realm=\"Login Required\"")] : [])
    }
}
