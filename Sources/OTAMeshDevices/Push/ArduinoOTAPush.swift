import OTAMeshRollout

/// One push to an ArduinoOTA device ("upgrade local": the gateway plays the host tool), as a
/// pure state machine: the shell feeds it events (image facts, datagrams, TCP bytes, version
/// probes, clock ticks) with the time and executes the actions it returns. No sockets, no
/// clock, no randomness of its own: all three are the shell's.
///
/// First the image: its size, MD5 and header chip (``Action/readImage``). An image without a
/// version, or one for another chip than the device's known variant, is refused before any
/// byte goes out.
///
/// Dialect ``ArduinoOTADialect/arduino`` (ArduinoOTA.cpp, espota.py):
/// 1. ``Action/listen``: a TCP listener on the local address that reaches the device.
/// 2. The invitation datagram `"0 <port> <size> <md5>\n"` (`100 …` for a filesystem image,
///    ``PushImage/configID``) to the device's OTA port; it answers
///    `OK`, `AUTH <nonce>` (answered with `"200 <cnonce> <md5 result>\n"`, then `OK` or
///    `Authentication Failed`), or `ERR: <text>` (ESP8266: Update.begin failed).
/// 3. The device connects back; the image streams; the device acknowledges written byte counts
///    in ASCII and ends with `OK` (or Update.printError's text, then closes).
///
/// Dialect ``ArduinoOTADialect/esphome`` (ESPHome native OTA v1): TCP to the OTA port; magic →
/// `0x00 0x01`; features `0x00` → 64; 65 (no password) or 1 + 32-byte nonce (answered with
/// cnonce + md5hex(password + nonce + cnonce) → 65); size (4 bytes, big-endian) → 66; MD5 hex
/// → 67; the image; 68, 69; the host acknowledges with `0x00`. Codes 128–137 and 255 are the
/// device's errors (``ArduinoOTAWire/esphomeError(_:)``).
///
/// Then, for both: the device reboots; ``RebootConfirmation`` judges the version the shell's
/// ``Action/fetchVersion`` reads. Link failures before the first image byte (no answer, connect
/// refused, a reset mid-handshake) retry under ``PushTiming/retry``; a device refusal stops at
/// once (``PushFailure/Kind/refused``); a link lost once image bytes flowed is
/// ``PushFailure/Kind/network``, not retried. Everything ends by ``PushTiming/deadline``.
///
/// The password (``PushCredentials``) is used only to compute the challenge answers; no
/// action's description, failure or reason carries it.
public struct ArduinoOTAPush: Sendable {
    /// Timeouts and intervals, milliseconds (shared by the push families).
    public typealias Timing = PushTiming

    /// The OTA conversation's own waits, milliseconds (espota's defaults).
    public struct Timeouts: Sendable, Equatable {
        /// For one answer: to the invitation or the authentication datagram, to the ESPHome
        /// connect and each handshake step.
        public var reply: Int64 = 10_000
        /// From the device's `OK` to its TCP connection back (arduino).
        public var connectBack: Int64 = 10_000
        /// Without any answer from the device while the image flows.
        public var stall: Int64 = 10_000
        /// From the last image byte to the device's result (Update.end checks the image).
        public var result: Int64 = 60_000

        public init() {}
    }

    /// What the shell read of the image file.
    public struct ImageFacts: Sendable, Equatable {
        public var size: Int64
        public var md5: String
        /// The chip the image header names (`esp8266`, `esp32`, `esp32s3`, …), nil when it is
        /// no ESP image.
        public var chip: String?

        public init(size: Int64, md5: String, chip: String?) {
            self.size = size
            self.md5 = md5
            self.chip = chip
        }
    }

    public enum Event: Sendable, Equatable {
        case started
        case imageRead(ImageFacts)
        /// The image's file could not be read (nothing was sent).
        case imageUnreadable(String)
        /// arduino: the listener for the device's connection is bound on this local port.
        case listening(port: Int)
        /// arduino: the device's UDP answer.
        case datagram([UInt8])
        /// arduino: the device connected back; esphome: the connection to the device is up.
        case connected
        /// Bytes from the device on the TCP connection.
        case received([UInt8])
        /// Image bytes went out (after each chunk the connection took).
        case sending
        /// All image bytes went out.
        case sent
        /// The TCP connection ended (closed by the device, reset, a failed write) after
        /// `sentBytes` image bytes.
        case closed(String, sentBytes: Int64)
        /// The link could not be set up (no route, bind failed, connect refused or timed out).
        case linkFailed(String)
        /// The version endpoint answered this version (and variant, when it names one).
        case version(String, variant: String?)
        case versionFailed(String)
        /// The time asked for with ``Action/wait(until:)`` has come.
        case tick
    }

    public enum Action: Sendable, Equatable {
        /// Read the image file: size, MD5, header chip (answer ``Event/imageRead(_:)``).
        case readImage
        /// arduino: a UDP socket to the device and a TCP listener on the local address that
        /// reaches it, port 0 (answer ``Event/listening(port:)``).
        case listen
        /// arduino: send this datagram to the device's OTA port.
        case sendDatagram([UInt8])
        /// esphome: connect to the device's OTA port (answer ``Event/connected``).
        case connect
        /// Write these bytes on the TCP connection (before the next action).
        case send([UInt8])
        /// Stream the image file on the TCP connection, in chunks.
        case streamImage
        /// Close the OTA sockets.
        case closeLink
        case fetchVersion
        /// Deliver ``Event/tick`` at this time (replaces any earlier wait).
        case wait(until: Int64)
        case progress(DeviceOutcome.Phase)
        case succeeded(version: String)
        case failed(PushFailure)
    }

    /// The ESPHome handshake steps, each waiting for its answer.
    enum ESPHomeStep: Sendable, Equatable {
        case version, features, auth, nonce, authResult, prepare, md5, receiveOK, endOK

        var length: Int {
            switch self {
            case .version: 2
            case .nonce: 32
            default: 1
            }
        }

        var name: String {
            switch self {
            case .version: "the magic bytes"
            case .features: "the features"
            case .auth: "the authentication request"
            case .nonce: "the authentication nonce"
            case .authResult: "the authentication answer"
            case .prepare: "the image size"
            case .md5: "the image MD5"
            case .receiveOK: "the image data"
            case .endOK: "the update end"
            }
        }

        /// After the image data: nothing is retried any more.
        var afterData: Bool { self == .receiveOK || self == .endOK }
    }

    enum Stage: Sendable, Equatable {
        case idle
        case reading
        /// arduino: waiting for the listener; esphome: for the connection.
        case linking
        case backingOff
        case inviting
        case authenticating
        case awaitingDevice
        case handshaking(ESPHomeStep)
        case streaming
        /// arduino: all sent, waiting for `OK`.
        case finishing
        case confirming
        case done
    }

    public let image: PushImage
    public let target: PushTarget
    public let dialect: ArduinoOTADialect
    public let timing: Timing
    public let timeouts: Timeouts
    let credentials: PushCredentials?
    let started: Int64
    let random: Double
    let nonceSeed: UInt64
    var stage = Stage.idle
    var facts: ImageFacts?
    var hostPort = 0
    var attempts = 0
    var stepDeadline: Int64 = 0
    var lastActivity: Int64 = 0
    var acknowledgements = ArduinoOTAWire.Acknowledgements()
    var buffer: [UInt8] = []
    var allSent = false
    var reported = Set<Int>()
    var confirmation: RebootConfirmation?
    /// arduino: the connection back came before the `OK` was read (two sockets, either order).
    var connectedEarly = false

    /// `random` (uniform in [0, 1)) sets the retry backoff's jitter; `nonceSeed` the client
    /// nonce of the challenge answers.
    public init(
        image: PushImage, target: PushTarget, dialect: ArduinoOTADialect, credentials: PushCredentials?,
        timing: Timing = Timing(), timeouts: Timeouts = Timeouts(), now: Int64, random: Double = 0.5, nonceSeed: UInt64 = 0
    ) {
        self.image = image
        self.target = target
        self.dialect = dialect
        self.credentials = credentials
        self.timing = timing
        self.timeouts = timeouts
        started = now
        self.random = random
        self.nonceSeed = nonceSeed
    }

    /// Whether a password is configured (only the fact).
    public var authenticates: Bool { credentials != nil }

    public mutating func handle(_ event: Event, now: Int64) -> [Action] {
        guard stage != .done else { return [] }
        if now - started > timing.deadline {
            let last = confirmation?.lastVersion.map { " (device last reported \($0))" } ?? ""
            return fail(.timeout, "no confirmed version within \(timing.deadline / 1000) s\(last)")
        }
        switch (stage, event) {
        case (.idle, .started):
            guard image.version != nil || image.configID != nil else {
                return fail(.refused, "image \(image.path) names no version; the push could not be confirmed")
            }
            if image.configID != nil, dialect == .esphome {
                return fail(.refused, "ESPHome's native OTA flashes the app only; it takes no filesystem image (nothing was sent)")
            }
            stage = .reading
            return [.readImage]
        case (.reading, .imageRead(let facts)):
            return imageRead(facts, now: now)
        case (.reading, .imageUnreadable(let reason)):
            return fail(.refused, "image not sent: \(reason)")
        case (.linking, .listening(let port)):
            hostPort = port
            return invite(now: now)
        case (.linking, .connected) where dialect == .esphome:
            stage = .handshaking(.version)
            buffer = []
            return [.send(ArduinoOTAWire.esphomeMagic)] + expect(now + timeouts.reply)
        case (.linking, .linkFailed(let reason)):
            return retry(dialect == .arduino ? "cannot reach the device: \(reason)" : "connect to \(target.host):\(target.port) failed: \(reason)", now: now)
        case (.linking, .tick) where now >= stepDeadline:
            return retry("connect to \(target.host):\(target.port) timed out after \(timeouts.reply / 1000) s", now: now)
        case (.backingOff, .tick) where now >= stepDeadline:
            return link(now: now)
        case (.inviting, .datagram(let bytes)), (.authenticating, .datagram(let bytes)):
            return answered(ArduinoOTAWire.reply(bytes), now: now)
        case (.inviting, .tick) where now >= stepDeadline:
            return retry("no answer to the invitation from \(target.host):\(target.port) (UDP) within \(timeouts.reply / 1000) s", now: now)
        case (.authenticating, .tick) where now >= stepDeadline:
            return retry("no answer to the authentication from \(target.host):\(target.port) within \(timeouts.reply / 1000) s", now: now)
        case (.awaitingDevice, .connected):
            return stream(now: now)
        case (.inviting, .connected), (.authenticating, .connected):
            connectedEarly = true
            return []
        case (.awaitingDevice, .tick) where now >= stepDeadline:
            return fail(
                .refused,
                "device accepted the invitation but did not connect back to port \(hostPort) within \(timeouts.connectBack / 1000) s"
                    + " (ESP32 answers OK before Update.begin: the image may not fit its OTA partition; or a firewall blocks the device's connection)")
        case (.handshaking, .received(let bytes)):
            buffer += bytes.prefix(4096)
            return handshake(now: now)
        case (.handshaking(let step), .closed(let reason, _)):
            if let failure = pendingError() { return fail(failure.kind, failure.reason) }
            if step.afterData {
                return fail(.network, "connection lost after all \(facts?.size ?? 0) bytes were sent, before the device confirmed \(step.name): \(reason)")
            }
            return retry("connection closed during the handshake (waiting for \(step.name)): \(reason)", now: now)
        case (.handshaking(let step), .tick) where now >= stepDeadline:
            if step.afterData {
                return fail(.timeout, "device did not report the result of the update within \(timeouts.result / 1000) s of the last byte")
            }
            return retry("no answer to \(step.name) within \(timeouts.reply / 1000) s", now: now)
        case (.streaming, .sending):
            lastActivity = now
            return report(.downloading)
        case (.streaming, .received(let bytes)):
            lastActivity = now
            return streamed(bytes, now: now)
        case (.streaming, .sent), (.finishing, .sent):
            lastActivity = now
            return sentAll(now: now)
        case (.streaming, .closed(let reason, let sent)):
            // The device may answer OK and close before the shell saw its last write complete.
            if dialect == .arduino, acknowledgements.ok { return took(now: now) }
            if let failure = pendingError() { return fail(failure.kind, failure.reason) }
            let of = (facts?.size).map { " of \($0)" } ?? ""
            return fail(.network, "connection lost during the transfer after \(sent)\(of) bytes: \(reason)")
        case (.streaming, .tick):
            guard now - lastActivity >= timeouts.stall else { return [.wait(until: lastActivity + timeouts.stall)] }
            return fail(.network, "transfer stalled: nothing from the device for \(timeouts.stall / 1000) s")
        case (.finishing, .received(let bytes)):
            acknowledgements.add(bytes)
            if acknowledgements.ok { return took(now: now) }
            if acknowledgements.errorComplete, let failure = pendingError() { return fail(failure.kind, failure.reason) }
            return []
        case (.finishing, .closed(let reason, _)):
            if acknowledgements.ok { return took(now: now) }
            if let failure = pendingError() { return fail(failure.kind, failure.reason) }
            // "Sent" is handed to the kernel: a device that died mid-image may close only now.
            return fail(.network, "connection lost after all \(facts?.size ?? 0) bytes were sent, before the device answered OK: \(reason)")
        case (.finishing, .tick) where now >= stepDeadline:
            return fail(.timeout, "device did not report the result of the update within \(timeouts.result / 1000) s of the last byte")
        case (.confirming, .tick):
            return [.fetchVersion]
        case (.confirming, .version(let version, let variant)):
            return confirm(version, variant: variant, now: now)
        case (.confirming, .versionFailed(let reason)):
            return judge(confirmation?.unreachable(reason, now: now, timing: timing), now: now)
        default:
            return []
        }
    }

    // MARK: the image

    mutating func imageRead(_ facts: ImageFacts, now: Int64) -> [Action] {
        self.facts = facts
        guard facts.size > 0 else { return fail(.refused, "image \(image.path) is empty") }
        if dialect == .esphome, facts.size > Int64(UInt32.max) {
            return fail(.refused, "image \(image.path) is \(facts.size) bytes; ESPHome OTA sizes are 32-bit")
        }
        // A filesystem image names no chip: the device's own partition takes it.
        if image.configID != nil { return link(now: now) }
        let variantChip = image.variant.flatMap(ArduinoOTAWire.chip(ofVariant:))
        if let headerChip = facts.chip, let variantChip, headerChip != variantChip {
            return fail(.refused, "image \(image.path) is built for \(headerChip) (its header) but labelled variant \(image.variant ?? "")")
        }
        if let deviceVariant = target.variant, let deviceChip = ArduinoOTAWire.chip(ofVariant: deviceVariant), let imageChip = facts.chip ?? variantChip,
            deviceChip != imageChip
        {
            let source = facts.chip != nil ? "its header" : "variant \(image.variant ?? "")"
            return fail(
                .refused,
                "device variant \(deviceVariant) (\(deviceChip)) is not compatible with the image, built for \(imageChip) (\(source)); nothing was sent")
        }
        return link(now: now)
    }

    // MARK: links and retries

    /// Sets up the link of the dialect (again, after a backoff).
    mutating func link(now: Int64) -> [Action] {
        stage = .linking
        acknowledgements = .init()
        buffer = []
        connectedEarly = false
        switch dialect {
        case .arduino:
            stepDeadline = now + timeouts.reply
            return [.listen]
        case .esphome:
            return [.connect] + expect(now + timeouts.reply)
        }
    }

    mutating func retry(_ reason: String, now: Int64) -> [Action] {
        attempts += 1
        switch timing.networkRetry(reason, attempt: attempts, started: started, now: now, random: random) {
        case .success(let until):
            stage = .backingOff
            stepDeadline = until
            return [.closeLink, .wait(until: stepDeadline)]
        case .failure(let exhausted):
            return fail(.network, "device unreachable for the OTA update: \(exhausted.reason)")
        }
    }

    mutating func expect(_ deadline: Int64) -> [Action] {
        stepDeadline = deadline
        return [.wait(until: deadline)]
    }

    // MARK: arduino

    mutating func invite(now: Int64) -> [Action] {
        stage = .inviting
        let command = image.configID == nil ? ArduinoOTAWire.flashCommand : ArduinoOTAWire.spiffsCommand
        let message = ArduinoOTAWire.invitation(command: command, hostPort: hostPort, size: facts?.size ?? 0, md5: facts?.md5 ?? "")
        return [.sendDatagram(message)] + expect(now + timeouts.reply)
    }

    mutating func answered(_ reply: ArduinoOTAWire.Reply, now: Int64) -> [Action] {
        switch (stage, reply) {
        case (_, .ok):
            stage = .awaitingDevice
            if connectedEarly { return stream(now: now) }
            return expect(now + timeouts.connectBack)
        case (.inviting, .auth(let nonce)):
            guard let credentials else {
                return fail(.refused, "authentication failed: the device wants a password and none is configured")
            }
            stage = .authenticating
            let message = ArduinoOTAWire.authMessage(password: credentials.password, nonce: nonce, cnonce: cnonce())
            return [.sendDatagram(message)] + expect(now + timeouts.reply)
        case (.authenticating, .authenticationFailed):
            return fail(.refused, "authentication failed: the device rejected the configured password")
        case (_, .beginFailed(let text)):
            return fail(.refused, "device could not begin the update (Update.begin): \(text.isEmpty ? "no reason given" : text)")
        case (_, .auth):
            return fail(.refused, "device asked for authentication again: the configured password was not accepted")
        case (_, .authenticationFailed), (_, .other):
            let said: String
            if case .other(let text) = reply { said = text } else { said = "Authentication Failed" }
            return fail(.refused, "unexpected answer to the \(stage == .inviting ? "invitation" : "authentication"): \(said.isEmpty ? "(empty)" : said)")
        }
    }

    /// A client nonce: any 32 hex digits do (the device checks only the length).
    func cnonce() -> String {
        ArduinoOTAWire.md5Hex(Array("\(facts?.md5 ?? "")\(facts?.size ?? 0)\(nonceSeed)".utf8))
    }

    // MARK: the image flows

    mutating func stream(now: Int64) -> [Action] {
        stage = .streaming
        lastActivity = now
        allSent = false
        return [.streamImage, .wait(until: now + timeouts.stall)]
    }

    mutating func streamed(_ bytes: [UInt8], now: Int64) -> [Action] {
        switch dialect {
        case .arduino:
            acknowledgements.add(bytes)
            let progress = acknowledgements.digits > 0 ? report(.downloading) : []
            if acknowledgements.errorComplete, let failure = pendingError() { return progress + fail(failure.kind, failure.reason) }
            return progress
        case .esphome:
            buffer += bytes.prefix(4096)
            if let failure = pendingError() { return fail(failure.kind, failure.reason) }
            // The device says at most 68 (and 69) before the host is done: more is no ESPHome OTA.
            guard buffer.count <= 16 else { return fail(.refused, "device sent \(buffer.count) unexpected bytes during the transfer") }
            return []
        }
    }

    mutating func sentAll(now: Int64) -> [Action] {
        allSent = true
        let progress = report(.downloading) + report(.installing)
        switch dialect {
        case .arduino:
            if acknowledgements.ok { return progress + took(now: now) }
            stage = .finishing
            return progress + expect(now + timeouts.result)
        case .esphome:
            stage = .handshaking(.receiveOK)
            return Self.lastWaitOnly(progress + expect(now + timeouts.result) + handshake(now: now))
        }
    }

    /// The device's error so far, as a failure: arduino's Update.printError text, or an
    /// ESPHome error code at the head of the buffer.
    func pendingError() -> PushFailure? {
        switch dialect {
        case .arduino:
            guard let text = acknowledgements.error else { return nil }
            return PushFailure(.refused, "device refused the image: \(text)")
        case .esphome:
            guard let first = buffer.first, let meaning = ArduinoOTAWire.esphomeError(first) else { return nil }
            if case .handshaking(.nonce) = stage { return nil }
            return PushFailure(.refused, "device refused the update: \(meaning)")
        }
    }
}
