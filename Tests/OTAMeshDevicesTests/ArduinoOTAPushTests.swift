import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import Testing

/// The ArduinoOTA push state machine, both dialects, driven by hand: every transition, every
/// failure mode, and the password kept out of everything printed.
@Suite("ArduinoOTA push")
struct ArduinoOTAPushTests {
    static let password = "s3cret-ota-pass"
    static let md5 = "0123456789abcdef0123456789abcdef"
    static let facts = ArduinoOTAPush.ImageFacts(size: 1000, md5: md5, chip: "esp32")
    static let image = PushImage(
        path: "lamp/esp32/2.0.0.bin", sha256: "ab", length: 1000, version: "2.0.0",
        file: "/dev/null", url: nil, variant: "esp32")
    static let device = PushTarget(id: "lamp-1", family: .arduinoOTA, host: "10.0.1.6", port: 3232, variant: "esp32", version: "1.0.0")

    static func machine(
        _ dialect: ArduinoOTADialect, password: String? = nil, target: PushTarget = device, image: PushImage = image,
        timing: PushTiming = PushTiming()
    ) -> ArduinoOTAPush {
        ArduinoOTAPush(
            image: image, target: target, dialect: dialect,
            credentials: password.map { PushCredentials(username: "", password: $0) }, timing: timing, now: 0, nonceSeed: 7)
    }

    static func failure(_ actions: [ArduinoOTAPush.Action]) -> PushFailure? {
        for case .failed(let failure) in actions { return failure }
        return nil
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// No printed form of the machine, its actions or its failures carries the password.
    static func expectNoPassword(_ things: [Any], sourceLocation: SourceLocation = #_sourceLocation) {
        for thing in things {
            var dumped = ""
            dump(thing, to: &dumped)
            for text in [String(describing: thing), String(reflecting: thing), dumped] {
                #expect(!text.contains(password), "password in \(text)", sourceLocation: sourceLocation)
            }
        }
    }

    /// An arduino machine that sent its invitation at t = 10 (listener on port 4321).
    static func invited(password: String? = nil) -> ArduinoOTAPush {
        var push = machine(.arduino, password: password)
        #expect(push.handle(.started, now: 0) == [.readImage])
        #expect(push.handle(.imageRead(facts), now: 5) == [.listen])
        #expect(
            push.handle(.listening(port: 4321), now: 10)
                == [.sendDatagram(bytes("0 4321 1000 \(md5)\n")), .wait(until: 10_010)])
        return push
    }

    // MARK: arduino

    @Test("arduino: invitation, OK, the device connects back, acks, OK, reboot, the new version")
    func arduinoSucceeds() {
        var push = Self.invited()
        #expect(push.handle(.datagram(Self.bytes("OK")), now: 20) == [.wait(until: 10_020)])
        #expect(push.handle(.connected, now: 30) == [.streamImage, .wait(until: 10_030)])
        #expect(push.handle(.sending, now: 31) == [.progress(.downloading)])
        #expect(push.handle(.received(Self.bytes("1460")), now: 32) == [])
        #expect(push.handle(.tick, now: 10_030) == [.wait(until: 10_032)], "acks keep the transfer alive")
        #expect(push.handle(.sent, now: 40) == [.progress(.installing), .wait(until: 60_040)])
        #expect(push.handle(.received(Self.bytes("1460O")), now: 50) == [])
        #expect(push.handle(.received(Self.bytes("K")), now: 51) == [.closeLink, .wait(until: 1051)])
        #expect(push.handle(.tick, now: 1051) == [.fetchVersion])
        #expect(push.handle(.versionFailed("connection refused"), now: 1060) == [.wait(until: 2060)])
        #expect(push.handle(.tick, now: 2060) == [.fetchVersion])
        #expect(push.handle(.version("2.0.0", variant: "esp32"), now: 2070) == [.succeeded(version: "2.0.0")])
        #expect(push.handle(.tick, now: 3000) == [], "a finished push ignores further events")
    }

    @Test("arduino: a configuration image goes with the filesystem command (100), names no version, and is confirmed by the device reporting its config-id")
    func arduinoFilesystem() {
        let configuration = PushImage(
            path: "configuration cfg-0011223344556677", sha256: "", length: 1000, version: nil, file: "/dev/null", url: nil, configID: "cfg-0011223344556677")
        var push = Self.machine(.arduino, image: configuration)
        #expect(push.handle(.started, now: 0) == [.readImage])
        #expect(push.handle(.imageRead(.init(size: 1000, md5: Self.md5, chip: nil)), now: 5) == [.listen], "no chip check for a filesystem")
        #expect(push.handle(.listening(port: 4321), now: 10) == [.sendDatagram(Self.bytes("100 4321 1000 \(Self.md5)\n")), .wait(until: 10_010)])
        _ = push.handle(.datagram(Self.bytes("OK")), now: 20)
        _ = push.handle(.connected, now: 30)
        _ = push.handle(.received(Self.bytes("1000OK")), now: 40)
        _ = push.handle(.closed("EOF", sentBytes: 1000), now: 41)
        #expect(push.handle(.tick, now: 1041) == [.fetchVersion])
        #expect(push.handle(.version("cfg-0011223344556677", variant: nil), now: 1050) == [.succeeded(version: "cfg-0011223344556677")])

        // Another config after the reboot is not this push's; ESPHome takes no filesystem at all.
        var stale = Self.machine(.arduino, image: configuration)
        _ = stale.handle(.started, now: 0)
        _ = stale.handle(.imageRead(.init(size: 1000, md5: Self.md5, chip: nil)), now: 5)
        _ = stale.handle(.listening(port: 4321), now: 10)
        _ = stale.handle(.datagram(Self.bytes("OK")), now: 20)
        _ = stale.handle(.connected, now: 30)
        _ = stale.handle(.received(Self.bytes("1000OK")), now: 40)
        _ = stale.handle(.closed("EOF", sentBytes: 1000), now: 41)
        _ = stale.handle(.versionFailed("connection refused"), now: 1050)
        #expect(Self.failure(stale.handle(.version("cfg-ffffffffffffffff", variant: nil), now: 3000))?.kind == .rebootedIntoOld)
        var esphome = Self.machine(.esphome, image: configuration)
        #expect(Self.failure(esphome.handle(.started, now: 0))?.reason.contains("takes no filesystem image") == true)
    }

    @Test("arduino: the connection back reported before the device's OK (two sockets, either order) still gets the image")
    func arduinoConnectedBeforeOK() {
        var push = Self.invited()
        #expect(push.handle(.connected, now: 20) == [], "kept until the OK is read")
        #expect(push.handle(.datagram(Self.bytes("OK")), now: 21) == [.streamImage, .wait(until: 10_021)])
        #expect(push.handle(.sending, now: 22) == [.progress(.downloading)])
    }

    @Test("arduino: OK and the close can come before the last write completes")
    func arduinoEarlyOK() {
        var push = Self.invited()
        _ = push.handle(.datagram(Self.bytes("OK")), now: 20)
        _ = push.handle(.connected, now: 30)
        #expect(push.handle(.received(Self.bytes("1000OK")), now: 40) == [.progress(.downloading)])
        #expect(push.handle(.closed("EOF", sentBytes: 1000), now: 41) == [.closeLink, .progress(.installing), .wait(until: 1041)])
    }

    @Test("arduino: AUTH nonce is answered with 200 cnonce md5(md5(password):nonce:cnonce); the password never shows")
    func arduinoAuth() throws {
        var push = Self.invited(password: Self.password)
        let nonce = String(repeating: "a1", count: 16)
        let actions = push.handle(.datagram(Self.bytes("AUTH \(nonce)")), now: 20)
        guard case .sendDatagram(let message)? = actions.first else { Issue.record("\(actions)"); return }
        let parts = String(decoding: message, as: UTF8.self).split(separator: " ").map(String.init)
        #expect(parts.count == 3 && parts[0] == "200" && parts[1].count == 32 && parts[2].hasSuffix("\n"))
        let cnonce = parts[1]
        let expected = ArduinoOTAWire.md5Hex(Self.bytes("\(ArduinoOTAWire.md5Hex(Self.bytes(Self.password))):\(nonce):\(cnonce)"))
        #expect(parts[2] == expected + "\n")
        #expect(actions.last == .wait(until: 10_020))
        #expect(push.handle(.datagram(Self.bytes("OK")), now: 30) == [.wait(until: 10_030)])
        Self.expectNoPassword([push, actions])

        var wrong = Self.invited(password: Self.password)
        _ = wrong.handle(.datagram(Self.bytes("AUTH \(nonce)")), now: 20)
        let failed = wrong.handle(.datagram(Self.bytes("Authentication Failed")), now: 30)
        let failure = try #require(Self.failure(failed))
        #expect(failure.kind == .refused && failure.reason.contains("rejected the configured password"), "\(failure)")
        Self.expectNoPassword([wrong, failed, failure])

        var none = Self.invited()
        let noPassword = Self.failure(none.handle(.datagram(Self.bytes("AUTH \(nonce)")), now: 20))
        #expect(noPassword?.kind == .refused && noPassword?.reason.contains("none is configured") == true, "\(String(describing: noPassword))")
    }

    @Test("arduino: ERR: from Update.begin and other answers are refusals with the device's text")
    func arduinoRefusals() {
        let cases: [(String, String)] = [
            ("ERR: ERROR[4]: Not Enough Space\r\n", "Update.begin): ERROR[4]: Not Enough Space"),
            ("BUSY", "unexpected answer to the invitation: BUSY"),
            ("AUTH short", "unexpected answer to the invitation: AUTH short"),
            ("\u{1}\u{2}\u{3}", "unexpected answer to the invitation: (empty)"),
        ]
        for (answer, words) in cases {
            var push = Self.invited()
            let failure = Self.failure(push.handle(.datagram(Self.bytes(answer)), now: 20))
            #expect(failure?.kind == .refused, "\(answer)")
            #expect(failure?.reason.contains(words) == true, "\(String(describing: failure))")
        }
    }

    @Test("arduino: an unanswered invitation is retried (new listener, new invitation) until the retry timeout, then network")
    func arduinoRetries() {
        var timing = PushTiming()
        timing.retry.retryTimeout = 3
        var timeouts = ArduinoOTAPush.Timeouts()
        timeouts.reply = 500
        var push = ArduinoOTAPush(image: Self.image, target: Self.device, dialect: .arduino, credentials: nil, timing: timing, timeouts: timeouts, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.imageRead(Self.facts), now: 0)
        var now: Int64 = 0
        var invitations = 0
        var outcome: PushFailure?
        for _ in 0..<100 {
            let sent = push.handle(.listening(port: 5000), now: now)
            guard case .sendDatagram? = sent.first, case .wait(let until)? = sent.last else { Issue.record("\(sent)"); return }
            invitations += 1
            #expect(push.handle(.tick, now: until - 1) == [], "an early tick is ignored")
            now = until
            let actions = push.handle(.tick, now: now)
            if let failure = Self.failure(actions) { outcome = failure; break }
            guard actions.first == .closeLink, case .wait(let backoff)? = actions.last else { Issue.record("\(actions)"); return }
            now = backoff
            #expect(push.handle(.tick, now: now) == [.listen])
        }
        #expect(invitations > 1, "retried")
        #expect(outcome?.kind == .network)
        #expect(outcome?.reason.contains("no answer to the invitation") == true, "\(String(describing: outcome))")
        #expect(now <= 5000, "within the retry timeout (plus one reply and one backoff)")
    }

    @Test("arduino: no connection back is refused; a lost connection mid-image is network; Update.end's error text is refused; silence times out")
    func arduinoTransferFailures() {
        var silent = Self.invited()
        _ = silent.handle(.datagram(Self.bytes("OK")), now: 20)
        let noConnect = Self.failure(silent.handle(.tick, now: 10_020))
        #expect(noConnect?.kind == .refused && noConnect?.reason.contains("did not connect back to port 4321") == true, "\(String(describing: noConnect))")

        func streaming() -> ArduinoOTAPush {
            var push = Self.invited()
            _ = push.handle(.datagram(Self.bytes("OK")), now: 20)
            _ = push.handle(.connected, now: 30)
            _ = push.handle(.sending, now: 31)
            return push
        }
        var dropped = streaming()
        let lost = Self.failure(dropped.handle(.closed("connection reset by peer", sentBytes: 500), now: 40))
        #expect(lost?.kind == .network)
        #expect(lost?.reason == "connection lost during the transfer after 500 of 1000 bytes: connection reset by peer")

        var md5 = streaming()
        _ = md5.handle(.sent, now: 40)
        #expect(md5.handle(.received(Self.bytes("1000MD5 Check")), now: 41) == [], "waits for the whole line")
        let refused = Self.failure(md5.handle(.received(Self.bytes(" Failed\r\n")), now: 42))
        #expect(refused?.kind == .refused && refused?.reason == "device refused the image: MD5 Check Failed", "\(String(describing: refused))")

        var closedQuietly = streaming()
        _ = closedQuietly.handle(.sent, now: 40)
        let quiet = Self.failure(closedQuietly.handle(.closed("EOF", sentBytes: 1000), now: 41))
        #expect(
            quiet?.kind == .network && quiet?.reason == "connection lost after all 1000 bytes were sent, before the device answered OK: EOF",
            "\(String(describing: quiet))")

        var noResult = streaming()
        _ = noResult.handle(.sent, now: 40)
        let late = Self.failure(noResult.handle(.tick, now: 60_040))
        #expect(late?.kind == .timeout, "\(String(describing: late))")

        var stalled = streaming()
        let stall = Self.failure(stalled.handle(.tick, now: 10_031))
        #expect(stall?.kind == .network && stall?.reason.contains("stalled") == true, "\(String(describing: stall))")
    }

    // MARK: esphome

    /// An esphome machine connected at t = 10 that sent its magic bytes.
    static func connected(password: String? = nil) -> ArduinoOTAPush {
        var push = machine(.esphome, password: password)
        _ = push.handle(.started, now: 0)
        #expect(push.handle(.imageRead(facts), now: 5) == [.connect, .wait(until: 10_005)])
        #expect(push.handle(.connected, now: 10) == [.send(ArduinoOTAWire.esphomeMagic), .wait(until: 10_010)])
        return push
    }

    /// Through the handshake up to the image size, answering `auth` to the features.
    static func prepared(password: String? = nil) -> ArduinoOTAPush {
        var push = connected(password: password)
        #expect(push.handle(.received([0x00, 0x01]), now: 11) == [.send([0x00]), .wait(until: 10_011)])
        #expect(push.handle(.received([64, 65]), now: 12) == [.send([0, 0, 0x03, 0xE8]), .wait(until: 10_012)])
        return push
    }

    @Test("esphome: magic, version, features, no auth, size, MD5, data, 68, 69, the ack byte, then the new version")
    func esphomeSucceeds() {
        var push = Self.prepared()
        #expect(push.handle(.received([66]), now: 13) == [.send(Self.bytes(Self.md5)), .wait(until: 10_013)])
        #expect(push.handle(.received([67]), now: 14) == [.streamImage, .wait(until: 10_014)])
        #expect(push.handle(.sending, now: 15) == [.progress(.downloading)])
        #expect(push.handle(.sending, now: 9000) == [])
        #expect(push.handle(.tick, now: 10_014) == [.wait(until: 19_000)], "the flowing image keeps the transfer alive")
        #expect(push.handle(.received([68]), now: 9500) == [], "kept until all is sent")
        #expect(push.handle(.sent, now: 9600) == [.progress(.installing), .wait(until: 69_600)])
        #expect(push.handle(.received([69]), now: 9700) == [.send([0x00]), .closeLink, .wait(until: 10_700)])
        #expect(push.handle(.tick, now: 10_700) == [.fetchVersion])
        #expect(push.handle(.version("2.0.0", variant: nil), now: 10_710) == [.succeeded(version: "2.0.0")])
    }

    @Test("esphome: the challenge is answered with cnonce + md5(password + nonce + cnonce); 130 is refused; no password configured is refused")
    func esphomeAuth() throws {
        let nonce = String(repeating: "0f", count: 16)
        var push = Self.connected(password: Self.password)
        _ = push.handle(.received([0x00, 0x01]), now: 11)
        #expect(push.handle(.received([64, 1]), now: 12) == [.wait(until: 10_012)])
        #expect(push.handle(.received(Self.bytes(String(nonce.prefix(10)))), now: 13) == [], "the nonce comes in pieces")
        let actions = push.handle(.received(Self.bytes(String(nonce.dropFirst(10)))), now: 14)
        guard case .send(let answer)? = actions.first else { Issue.record("\(actions)"); return }
        #expect(answer.count == 64)
        let cnonce = String(decoding: answer.prefix(32), as: UTF8.self)
        #expect(String(decoding: answer.suffix(32), as: UTF8.self) == ArduinoOTAWire.md5Hex(Self.bytes(Self.password + nonce + cnonce)))
        #expect(push.handle(.received([65]), now: 15) == [.send([0, 0, 0x03, 0xE8]), .wait(until: 10_015)])
        Self.expectNoPassword([push, actions])

        var wrong = Self.connected(password: Self.password)
        _ = wrong.handle(.received([0x00, 0x01, 64, 1]), now: 11)
        _ = wrong.handle(.received(Self.bytes(nonce)), now: 12)
        let failed = wrong.handle(.received([130]), now: 13)
        let failure = try #require(Self.failure(failed))
        #expect(failure.kind == .refused && failure.reason.contains("authentication invalid"), "\(failure)")
        Self.expectNoPassword([wrong, failed, failure])

        var none = Self.connected()
        let noPassword = Self.failure(none.handle(.received([0x00, 0x01, 64, 1]), now: 11))
        #expect(noPassword?.kind == .refused && noPassword?.reason.contains("none is configured") == true)
    }

    @Test("esphome: every device error code is refused with espota's meaning; unexpected bytes too")
    func esphomeErrors() {
        let codes: [(UInt8, String)] = [
            (129, "could not prepare the flash"), (136, "not enough space"), (137, "OTA partition is too small"),
            (133, "manual reset"), (134, "wrong flash size"), (135, "flash size the image asks for"), (255, "unknown error"),
        ]
        for (code, words) in codes {
            var push = Self.prepared()
            let failure = Self.failure(push.handle(.received([code]), now: 13))
            #expect(failure?.kind == .refused && failure?.reason.contains(words) == true, "\(code): \(String(describing: failure))")
        }
        var magic = Self.connected()
        let badMagic = Self.failure(magic.handle(.received([128]), now: 11))
        #expect(badMagic?.reason.contains("invalid magic") == true)

        var flash = Self.prepared()
        _ = flash.handle(.received([66, 67]), now: 13)
        let write = Self.failure(flash.handle(.received([131]), now: 14))
        #expect(write?.kind == .refused && write?.reason.contains("writing the OTA data to flash failed") == true, "\(String(describing: write))")

        var chatty = Self.prepared()
        _ = chatty.handle(.received([66, 67]), now: 13)
        let noise = Self.failure(chatty.handle(.received(Array(repeating: 0x41, count: 100)), now: 14))
        #expect(noise?.kind == .refused && noise?.reason == "device sent 100 unexpected bytes during the transfer", "\(String(describing: noise))")

        var end = Self.prepared()
        _ = end.handle(.received([66, 67]), now: 13)
        _ = end.handle(.sent, now: 20)
        let ended = Self.failure(end.handle(.received([68, 132]), now: 21))
        #expect(ended?.kind == .refused && ended?.reason.contains("finishing the update failed") == true, "\(String(describing: ended))")

        var version = Self.connected()
        let v2 = Self.failure(version.handle(.received([0x00, 0x02]), now: 11))
        #expect(v2?.kind == .refused && v2?.reason.contains("version 2") == true)

        var http = Self.connected()
        let notOTA = Self.failure(http.handle(.received(Self.bytes("HTTP/1.1 400")), now: 11))
        #expect(notOTA?.kind == .refused && notOTA?.reason.contains("unexpected answer 0x48 to the magic bytes") == true, "\(String(describing: notOTA))")
    }

    @Test("esphome: connect failures and resets in the handshake retry; a reset mid-image is network; silence after the image times out")
    func esphomeLinkFailures() {
        var timing = PushTiming()
        timing.retry.retryTimeout = 2
        var push = Self.machine(.esphome, timing: timing)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.imageRead(Self.facts), now: 0)
        var now: Int64 = 0
        var connects = 1
        var outcome: PushFailure?
        for _ in 0..<100 {
            let actions = push.handle(.linkFailed("connection refused"), now: now)
            if let failure = Self.failure(actions) { outcome = failure; break }
            guard case .wait(let until)? = actions.last else { Issue.record("\(actions)"); return }
            now = until
            #expect(push.handle(.tick, now: now) == [.connect, .wait(until: now + 10_000)])
            connects += 1
        }
        #expect(connects > 1 && outcome?.kind == .network, "\(String(describing: outcome))")
        #expect(outcome?.reason.contains("connect to 10.0.1.6:3232 failed: connection refused") == true, "\(String(describing: outcome))")

        var reset = Self.prepared()
        let again = reset.handle(.closed("connection reset by peer", sentBytes: 0), now: 20)
        #expect(again.first == .closeLink && Self.failure(again) == nil, "a reset before the image is retried: \(again)")

        var mid = Self.prepared()
        _ = mid.handle(.received([66, 67]), now: 13)
        let lost = Self.failure(mid.handle(.closed("connection reset by peer", sentBytes: 400), now: 20))
        #expect(lost?.kind == .network && lost?.reason == "connection lost during the transfer after 400 of 1000 bytes: connection reset by peer")

        var quiet = Self.prepared()
        _ = quiet.handle(.received([66, 67]), now: 13)
        _ = quiet.handle(.sent, now: 20)
        let late = Self.failure(quiet.handle(.tick, now: 60_020))
        #expect(late?.kind == .timeout, "\(String(describing: late))")
    }

    // MARK: both

    @Test("an image for another chip than the device's variant is refused before anything is sent")
    func wrongChip() {
        for dialect in ArduinoOTADialect.allCases {
            var push = Self.machine(dialect, target: PushTarget(id: "d", family: .arduinoOTA, host: "h", port: 8266, variant: "esp8266"))
            _ = push.handle(.started, now: 0)
            let actions = push.handle(.imageRead(Self.facts), now: 1)
            let failure = Self.failure(actions)
            #expect(failure?.kind == .refused, "\(dialect)")
            #expect(
                failure?.reason.contains("device variant esp8266 (esp8266) is not compatible with the image, built for esp32 (its header)") == true,
                "\(String(describing: failure))")
            #expect(!actions.contains(.listen) && !actions.contains(.connect))
        }
        // The header decides against a wrong label.
        var labelled = Self.machine(.arduino, image: PushImage(path: "x.bin", sha256: "", length: 1, version: "2", file: "", url: nil, variant: "esp32s3"))
        _ = labelled.handle(.started, now: 0)
        #expect(
            Self.failure(labelled.handle(.imageRead(Self.facts), now: 1))?.reason.contains("built for esp32 (its header) but labelled variant esp32s3") == true)
        // Variants with -eth and board suffixes compare by chip; unknown variants are not judged.
        for variant in ["esp32-eth", "ESP32", "d1_mini"] {
            var push = Self.machine(.arduino, target: PushTarget(id: "d", family: .arduinoOTA, host: "h", port: 3232, variant: variant))
            _ = push.handle(.started, now: 0)
            #expect(push.handle(.imageRead(Self.facts), now: 1) == [.listen], "\(variant)")
        }
        // No version, an unreadable or empty file.
        var unversioned = Self.machine(.arduino, image: PushImage(path: "x.bin", sha256: "", length: 1, version: nil, file: "", url: nil))
        #expect(Self.failure(unversioned.handle(.started, now: 0))?.reason.contains("names no version") == true)
        var unreadable = Self.machine(.esphome)
        _ = unreadable.handle(.started, now: 0)
        #expect(Self.failure(unreadable.handle(.imageUnreadable("cannot open x.bin"), now: 1))?.reason == "image not sent: cannot open x.bin")
        var empty = Self.machine(.esphome)
        _ = empty.handle(.started, now: 0)
        #expect(Self.failure(empty.handle(.imageRead(.init(size: 0, md5: Self.md5, chip: nil)), now: 1))?.reason.contains("is empty") == true)
    }

    @Test("after the transfer: the old version is rebooted-into-old; another chip's variant is too; silence is timeout")
    func confirmation() {
        func took(_ dialect: ArduinoOTADialect) -> ArduinoOTAPush {
            var push = Self.machine(dialect)
            _ = push.handle(.started, now: 0)
            _ = push.handle(.imageRead(Self.facts), now: 0)
            switch dialect {
            case .arduino:
                _ = push.handle(.listening(port: 1), now: 0)
                _ = push.handle(.datagram(Self.bytes("OK")), now: 0)
                _ = push.handle(.connected, now: 0)
                _ = push.handle(.sent, now: 0)
                #expect(push.handle(.received(Self.bytes("OK")), now: 100).first == .closeLink)
            case .esphome:
                _ = push.handle(.connected, now: 0)
                _ = push.handle(.received([0, 1, 64, 65, 66, 67]), now: 0)
                _ = push.handle(.sent, now: 0)
                #expect(push.handle(.received([68, 69]), now: 100).first == .send([0]))
            }
            _ = push.handle(.tick, now: 1100)
            return push
        }
        for dialect in ArduinoOTADialect.allCases {
            var old = took(dialect)
            _ = old.handle(.versionFailed("refused"), now: 1200)
            _ = old.handle(.tick, now: 2200)
            let failure = Self.failure(old.handle(.version("1.0.0", variant: nil), now: 2300))
            #expect(
                failure?.kind == .rebootedIntoOld && failure?.reason == "device rebooted and reports 1.0.0, not 2.0.0 (it ran 1.0.0 before)",
                "\(String(describing: failure))")

            var other = took(dialect)
            let variant = Self.failure(other.handle(.version("2.0.0", variant: "esp32s3-n16r8"), now: 1200))
            #expect(variant?.kind == .rebootedIntoOld && variant?.reason.contains("as variant esp32s3-n16r8") == true, "\(String(describing: variant))")

            var gone = took(dialect)
            _ = gone.handle(.versionFailed("refused"), now: 1200)
            let timeout = Self.failure(gone.handle(.versionFailed("refused"), now: 200_000))
            #expect(timeout?.kind == .timeout, "\(String(describing: timeout))")
        }
    }

    @Test("adapter: the registry options are checked before anything is sent; its description names no password")
    func adapterOptions() async {
        let adapter = ArduinoOTAAdapter(credentials: PushCredentials(username: "", password: Self.password))
        #expect(!"\(adapter)".contains(Self.password) && "\(adapter)".contains("password set"))
        for (options, words) in [(["dialect": "bogus"], "unknown ArduinoOTA dialect 'bogus'"), (["version_port": "http"], "version_port 'http' is not a port")]
        {
            var device = Self.device
            device.options = options
            do {
                _ = try await adapter.push(Self.image, to: device) { _ in }
                Issue.record("\(options): pushed")
            } catch {
                #expect(error.kind == .refused && error.reason.contains(words), "\(error)")
            }
        }
    }

    @Test("wire: invitation, replies, acknowledgements, chips; any bytes are read without a trap")
    func wire() {
        #expect(ArduinoOTAWire.invitation(hostPort: 40000, size: 12, md5: Self.md5) == Self.bytes("0 40000 12 \(Self.md5)\n"))
        #expect(ArduinoOTAWire.reply(Self.bytes("OK")) == .ok)
        #expect(ArduinoOTAWire.reply(Self.bytes("Authentication Failed")) == .authenticationFailed)
        #expect(ArduinoOTAWire.reply(Self.bytes("AUTH \(Self.md5)")) == .auth(nonce: Self.md5))
        #expect(ArduinoOTAWire.esphomeSize(0x0102_0304) == [1, 2, 3, 4])
        var acks = ArduinoOTAWire.Acknowledgements()
        acks.add(Self.bytes("14601460"))
        #expect(acks.digits == 8 && acks.error == nil && !acks.ok)
        acks.add(Self.bytes("O"))
        #expect(acks.error == nil, "a prefix of OK is no error yet")
        acks.add(Self.bytes("K"))
        #expect(acks.ok)
        #expect(ArduinoOTAWire.chip(ofVariant: "esp32s3-n16r8") == "esp32s3" && ArduinoOTAWire.chip(ofVariant: "esp8266") == "esp8266")
        #expect(ArduinoOTAWire.chip(ofVariant: "nodemcu") == nil)
        #expect(ArduinoOTAAdapter.defaultPort(variant: "esp8266") == 8266 && ArduinoOTAAdapter.defaultPort(variant: "esp32-eth") == 3232)
        #expect(ArduinoOTAAdapter.defaultPort(variant: nil) == 3232)
        #expect(ArduinoOTAWire.chip(ofHeader: [0xE9, 0, 0, 0]) != "esp32", "too short for an ESP32 header")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let noise = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = ArduinoOTAWire.reply(noise)
            _ = ArduinoOTAWire.chip(ofHeader: noise)
            var stream = ArduinoOTAWire.Acknowledgements()
            stream.add(noise)
            var push = Self.invited()
            _ = push.handle(.datagram(noise), now: 20)
            var esp = Self.connected(password: Self.password)
            _ = esp.handle(.received(noise), now: 11)
        }
    }
}
