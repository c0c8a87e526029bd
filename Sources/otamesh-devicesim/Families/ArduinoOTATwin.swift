import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// How an ArduinoOTA twin misbehaves (`serve --family arduino-ota --fail`).
enum ArduinoOTAFault: String, CaseIterable, Sendable {
    case none
    /// Update.begin fails (not enough space): ESP8266 answers the invitation `ERR: ERROR[4]: Not
    /// Enough Space`; ESP32 answers `OK` and never connects back; ESPHome answers error 136 / 137.
    case refuse
    /// Power lost half-way through the image: the connection drops, the device boots the old firmware.
    case dieMidTransfer = "die-mid-transfer"
    /// Takes the whole image, answers OK, reboots and comes back running the old version.
    case rebootOld = "reboot-old"
    /// Takes the image and comes back with the new version but another firmware variant.
    case wrongVariant = "wrong-variant"
}

struct ArduinoOTASettings: Sendable {
    var version: String
    /// The firmware variant key `/version` reports (esp32, esp8266, esp32s3-n16r8, …).
    var variant: String
    /// The ESP chip the images are checked for (esp8266, esp32, esp32s3, …).
    var chip: String
    var newVersion: String?
    var fault: ArduinoOTAFault
    /// ArduinoOTA.setPassword / ESPHome `ota: password:` (a test twin's, not a secret).
    var password: String?
    var rebootDelayMS: Int
    var rebootMS: Int
    /// The sketch's filesystem: a filesystem upload (command 100) is mounted with it and the
    /// config-id read from its configuration file is reported as `config` by `/version`.
    var filesystem: DeviceFilesystem? = nil
}

/// One emulated device with ArduinoOTA on one port: UDP for the classic invitation
/// (ArduinoOTA.cpp: `OK` / `AUTH <nonce>` / `ERR: …`, then it connects back to the host's TCP
/// port, acknowledges written byte counts and ends with `OK` or Update.printError's text) and
/// TCP for ESPHome's native OTA v1 (magic, version, features, auth, size, MD5, data, 68, 69).
/// Update.end checks the MD5 the host announced and that the image is an ESP app image for
/// the twin's chip. After success the device restarts: every port closes for
/// ``ArduinoOTASettings/rebootMS``; the HTTP port then answers `GET /version` with the image's
/// version (ESP32 app description, else `--new-version`) as `{"version", "variant"}`.
actor ArduinoOTATwin {
    let id: String
    let host: String
    nonisolated let settings: ArduinoOTASettings
    let sink: EventSink
    private(set) var otaPort: Int
    private(set) var httpPort: Int
    private var version: String
    private var variant: String
    /// The config-id of the configuration its filesystem holds (after a filesystem upload).
    private var configID: String?
    private var pendingBoot: (version: String, variant: String)?
    /// An update runs (the firmware serves one at a time, its loop blocked in it).
    private var busy = false
    private var rebooting = false
    private var invitation = InvitationState.idle
    private var bound: [any Channel] = []
    private var connections: [ObjectIdentifier: any Channel] = [:]
    private var rebootRequested: CheckedContinuation<Void, Never>?
    private var stopped = false

    enum InvitationState {
        case idle
        case waitingAuth(nonce: String, invitation: ArduinoOTAInvitation)
    }

    init(id: String, host: String, otaPort: Int, httpPort: Int, settings: ArduinoOTASettings, sink: EventSink) {
        self.id = id
        self.host = host
        self.otaPort = otaPort
        self.httpPort = httpPort
        self.settings = settings
        self.sink = sink
        version = settings.version
        variant = settings.variant
    }

    func event(_ name: String, _ fields: [(String, String)] = []) {
        var line = JSONLine()
        line.add("event", name)
        line.add("device", id)
        for (key, value) in fields { line.add(key, value) }
        sink.emit(line)
    }

    // MARK: lives

    /// Serves until `stop()`; every restart closes all ports for ``ArduinoOTASettings/rebootMS``.
    func run() async throws {
        for life in 0..<10_000 {
            try await bindAll()
            let shown = host.contains(":") ? "[\(host)]" : host
            let fields = [("address", "\(shown):\(otaPort)"), ("http", "\(shown):\(httpPort)"), ("version", version), ("variant", variant)]
            event(life == 0 ? "listening" : "booted", fields)
            if stopped { closeAll(); return }
            await withCheckedContinuation { continuation in rebootRequested = continuation }
            closeAll()
            if stopped { return }
            try? await Task.sleep(for: .milliseconds(settings.rebootMS))
            if let pendingBoot { (version, variant) = pendingBoot }
            pendingBoot = nil
            busy = false
            rebooting = false
            invitation = .idle
        }
    }

    func stop() {
        stopped = true
        rebootRequested?.resume()
        rebootRequested = nil
    }

    /// Restarts into `boot` (nil: the firmware it runs).
    private func restart(into boot: (version: String, variant: String)?) {
        guard !rebooting else { return }
        rebooting = true
        pendingBoot = boot
        event("rebooting", [("into", boot?.version ?? version)])
        rebootRequested?.resume()
        rebootRequested = nil
    }

    private func closeAll() {
        for channel in bound { channel.close(promise: nil) }
        for channel in connections.values { channel.close(promise: nil) }
        bound = []
        connections = [:]
    }

    /// TCP and UDP on the OTA port (the same number: port 0 picks a free TCP port, then UDP
    /// takes it too), HTTP on its own.
    private func bindAll() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        for attempt in 0..<20 {
            let tcp = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            TwinSessionHandler.idleLimit(),
                            TwinSessionHandler(twin: self) { channel, bytes in
                                await self.serveESPHome(on: channel, bytes: bytes)
                            })
                    }
                }
                .bind(host: host, port: otaPort).get()
            let port = tcp.localAddress?.port ?? otaPort
            do {
                let udp = try await DatagramBootstrap(group: group)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ArduinoInvitationHandler(twin: self))
                        }
                    }
                    .bind(host: host, port: port).get()
                otaPort = port
                bound = [tcp, udp]
                break
            } catch {
                try? await tcp.close()
                if otaPort != 0 || attempt == 19 { throw error }
            }
        }
        let http = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(VersionHTTPHandler(twin: self)) }
                }
            }
            .bind(host: host, port: httpPort).get()
        httpPort = http.localAddress?.port ?? httpPort
        bound.append(http)
    }

    /// Tracks a connection while the device is up; false: the caller closes it.
    func opened(_ channel: any Channel) -> Bool {
        guard !rebooting, !bound.isEmpty else { return false }
        connections[ObjectIdentifier(channel)] = channel
        return true
    }

    func closed(_ channel: any Channel) { connections[ObjectIdentifier(channel)] = nil }

    func versionAnswer() -> String {
        "{\"version\":\"\(version)\",\"variant\":\"\(variant)\"" + (configID.map { ",\"config\":\"\($0)\"" } ?? "") + "}"
    }

    // MARK: updates (both dialects)

    /// Update.begin: takes the device for one update, or why not (nil: go ahead).
    func begin(size: Int, dialect: String) -> String? {
        guard !busy, !rebooting else { return "busy" }
        if settings.fault == .refuse {
            event("failed", [("dialect", dialect), ("reason", "Update.begin: Not Enough Space"), ("size", String(size))])
            return "Not Enough Space"
        }
        busy = true
        event("accepted", [("dialect", dialect), ("size", String(size))])
        return nil
    }

    /// The update ended without an image (link lost, refused at the end): the firmware goes
    /// back to idle.
    func abandon(_ reason: String, dialect: String) {
        event("failed", [("dialect", dialect), ("reason", reason)])
        busy = false
    }

    /// The die-mid-transfer fault: power lost after `received` of `size` bytes (true: the
    /// connection drops now).
    func receiving(_ received: Int, of size: Int) -> Bool {
        guard settings.fault == .dieMidTransfer, size > 0, received >= size / 2, !rebooting else { return false }
        event("power-loss", [("at", String(received))])
        restart(into: nil)
        return true
    }

    enum EndFailure: Sendable {
        case md5(expected: String, calculated: String)
        case image(String)
    }

    /// Update.end on the whole image: nil when it is taken (the device reboots after
    /// ``ArduinoOTASettings/rebootDelayMS``), else why not.
    func end(_ image: [UInt8], md5 expected: String, dialect: String, filesystem: Bool = false) -> EndFailure? {
        let md5 = ImageFacts.md5Hex(image)
        guard md5 == expected.lowercased() else {
            abandon("MD5 mismatch: expected \(expected), calculated \(md5)", dialect: dialect)
            return .md5(expected: expected, calculated: md5)
        }
        if filesystem { return endFilesystem(image, md5: md5, dialect: dialect) }
        if let problem = FlashVerifier.problem(image, chip: settings.chip) {
            abandon(problem, dialect: dialect)
            return .image(problem)
        }
        let newVersion = FlashVerifier.embeddedVersion(image) ?? settings.newVersion ?? ("md5:" + String(md5.prefix(12)))
        event("installed", [("dialect", dialect), ("bytes", String(image.count)), ("md5", md5)])
        let boot: (String, String)?
        switch settings.fault {
        case .rebootOld: boot = nil
        case .wrongVariant: boot = (newVersion, ProjectMMVariantText.other(than: variant))
        default: boot = (newVersion, variant)
        }
        Task {
            try? await Task.sleep(for: .milliseconds(settings.rebootDelayMS))
            restart(into: boot)
        }
        return nil
    }

    /// Update.end of a filesystem upload (U_SPIFFS): written to the filesystem partition; the
    /// device restarts on the same firmware and mounts it.
    private func endFilesystem(_ image: [UInt8], md5: String, dialect: String) -> EndFailure? {
        if let filesystem = settings.filesystem {
            guard image.count <= filesystem.size else {
                abandon("filesystem image of \(image.count) bytes, partition \(filesystem.size)", dialect: dialect)
                return .image("Not Enough Space")
            }
            switch filesystem.mount(image) {
            case .success(let mounted):
                configID = mounted.configID
                event("configured", [("config", mounted.configID)] + mounted.settings.map { ("setting." + $0.0, $0.1) })
            case .failure(let problem):
                event("filesystem-failed", [("reason", problem.description)])
            }
        }
        event("installed", [("dialect", dialect), ("bytes", String(image.count)), ("md5", md5), ("partition", "filesystem")])
        Task {
            try? await Task.sleep(for: .milliseconds(settings.rebootDelayMS))
            restart(into: nil)
        }
        return nil
    }

    // MARK: classic ArduinoOTA (UDP)

    /// One datagram to the OTA port from `remote`: the answer to send back, if any, and the
    /// invitation to connect back for.
    func datagram(_ bytes: [UInt8]) -> (reply: String?, connect: ArduinoOTAInvitation?) {
        guard !rebooting else { return (nil, nil) }
        switch invitation {
        case .idle:
            guard !busy, let invitation = ArduinoOTAInvitation.parse(bytes) else { return (nil, nil) }
            event(
                "invitation",
                [
                    ("command", String(invitation.command)), ("port", String(invitation.port)),
                    ("size", String(invitation.size)), ("md5", invitation.md5),
                ])
            if settings.password != nil {
                let nonce = ImageFacts.md5Hex(Array(String(UInt64.random(in: 0...UInt64.max)).utf8))
                self.invitation = .waitingAuth(nonce: nonce, invitation: invitation)
                return ("AUTH \(nonce)", nil)
            }
            return accept(invitation)
        case .waitingAuth(let nonce, let invitation):
            self.invitation = .idle
            // "200 <cnonce> <response>\n"; anything else drops back to idle silently.
            let parts = String(decoding: bytes.prefix(128), as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            guard parts.count >= 3, parts[0] == "200", parts[1].count == 32, parts[2].count == 32 else { return (nil, nil) }
            let expected = ImageFacts.md5Hex(Array("\(ImageFacts.md5Hex(Array((settings.password ?? "").utf8))):\(nonce):\(parts[1])".utf8))
            guard parts[2] == expected else {
                event("auth-failed", [("dialect", "arduino")])
                return ("Authentication Failed", nil)
            }
            return accept(invitation)
        }
    }

    /// ESP8266 calls Update.begin before it answers (`ERR: …` on failure); ESP32 answers `OK`
    /// first and, when Update.begin then fails, never connects back.
    private func accept(_ invitation: ArduinoOTAInvitation) -> (reply: String?, connect: ArduinoOTAInvitation?) {
        let refusal = begin(size: invitation.size, dialect: "arduino")
        if settings.chip == "esp8266" {
            guard refusal == nil else { return ("ERR: ERROR[4]: Not Enough Space\r\n", nil) }
            return ("OK", invitation)
        }
        return ("OK", refusal == nil ? invitation : nil)
    }

    /// Connects back to the host (ArduinoOTA's `client.connect(_ota_ip, _ota_port)`).
    nonisolated func connectBack(to remote: SocketAddress, _ invitation: ArduinoOTAInvitation) {
        Task {
            do {
                var address = remote
                address.port = invitation.port
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.seconds(5))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandlers(
                                TwinSessionHandler.idleLimit(),
                                TwinSessionHandler(twin: self) { channel, bytes in
                                    await self.receiveClassic(invitation, on: channel, bytes: bytes)
                                })
                        }
                    }
                    .connect(to: address).get()
                _ = channel
            } catch {
                await abandon("connect back to port \(invitation.port) failed: \(error)", dialect: "arduino")
            }
        }
    }
}

/// `"<cmd> <port> <size> <md5>\n"` as ArduinoOTA.cpp's `_onRx` reads it (U_FLASH or U_SPIFFS,
/// an MD5 of 32 characters; anything else is ignored).
struct ArduinoOTAInvitation: Sendable, Equatable {
    var command: Int
    /// U_SPIFFS: the upload is a filesystem image.
    static let filesystemCommand = 100
    var port: Int
    var size: Int
    var md5: String

    static func parse(_ bytes: [UInt8]) -> ArduinoOTAInvitation? {
        let text = String(decoding: bytes.prefix(256), as: UTF8.self)
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" }).map(String.init)
        guard parts.count >= 4, let command = Int(parts[0]), command == 0 || command == 100,
            let port = Int(parts[1]), (1...65535).contains(port), let size = Int(parts[2]), size > 0, size <= 64 << 20,
            parts[3].count == 32
        else { return nil }
        return ArduinoOTAInvitation(command: command, port: port, size: size, md5: parts[3])
    }
}
