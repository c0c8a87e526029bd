import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import Testing

/// The HTTP upload push state machine (ESP8266HTTPUpdateServer), driven by hand: every
/// transition and every failure mode.
@Suite("HTTP upload push")
struct HTTPUploadPushTests {
    static let image = PushImage(
        path: "lamp/esp8266/2.0.0.bin", sha256: "ab", length: 1000, version: "2.0.0",
        file: "/dev/null", url: nil, variant: "esp8266")
    static let device = PushTarget(id: "lamp-1", family: .httpUpload, host: "10.0.1.6", port: 80, version: "1.0.0")
    static let success = "<META http-equiv=\"refresh\" content=\"15;URL=/\">Update Success! Rebooting..."

    static func failure(_ actions: [HTTPUploadPush.Action]) -> PushFailure? {
        for case .failed(let failure) in actions { return failure }
        return nil
    }

    /// A machine whose upload was accepted at t = 100: confirming, first poll due at 1100.
    static func confirming(authenticates: Bool = false) -> HTTPUploadPush {
        var push = HTTPUploadPush(image: image, target: device, authenticates: authenticates, now: 0)
        #expect(push.handle(.started, now: 0) == [.upload])
        #expect(push.handle(.sending, now: 10) == [.progress(.downloading)])
        #expect(push.handle(.sent, now: 90) == [.progress(.installing)])
        #expect(push.handle(.uploaded(status: 200, body: success), now: 100) == [.wait(until: 1100)])
        #expect(push.handle(.tick, now: 1100) == [.fetchVersion])
        return push
    }

    @Test("a whole push: upload, success text, the device away while it reboots, back on the new version")
    func succeeds() {
        var push = Self.confirming()
        #expect(push.handle(.versionFailed("connection refused"), now: 1110) == [.wait(until: 2110)])
        #expect(push.handle(.tick, now: 2110) == [.fetchVersion])
        #expect(push.handle(.version("2.0.0"), now: 2120) == [.succeeded(version: "2.0.0")])
        #expect(push.handle(.tick, now: 3000) == [], "a finished push ignores further events")
    }

    @Test("a device that answers at once with the new version; the success text without its HTML")
    func fast() {
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, now: 0)
        _ = push.handle(.started, now: 0)
        // No sending/sent seen (a tiny body): the answer still reports both phases.
        #expect(
            push.handle(.uploaded(status: 200, body: "Update Success! Rebooting..."), now: 5)
                == [.progress(.downloading), .progress(.installing), .wait(until: 1005)])
        _ = push.handle(.tick, now: 1005)
        #expect(push.handle(.version("2.0.0"), now: 1010) == [.succeeded(version: "2.0.0")])

        // ElegantOTA 2 on ESP32 answers a bare OK.
        var elegant = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, now: 0)
        _ = elegant.handle(.started, now: 0)
        #expect(elegant.handle(.uploaded(status: 200, body: "OK"), now: 5) == [.progress(.downloading), .progress(.installing), .wait(until: 1005)])
    }

    @Test("401: refused as authentication failed, saying whether credentials were sent")
    func unauthorized() {
        for authenticates in [false, true] {
            var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: authenticates, now: 0)
            _ = push.handle(.started, now: 0)
            let failure = Self.failure(push.handle(.uploaded(status: 401, body: ""), now: 5))
            #expect(failure?.kind == .refused)
            #expect(failure?.reason.contains("authentication failed") == true)
            #expect(failure?.reason.contains(authenticates ? "rejected the configured" : "none is configured") == true, "\(String(describing: failure))")
        }
    }

    @Test("\"Update error: …\" (answered with 200), 500 and other answers: refused with the device's text")
    func refusals() {
        let cases: [(Int, String, String)] = [
            (200, "Update error: ERROR[4]: Not Enough Space\n", "device refused the image: Update error: ERROR[4]: Not Enough Space"),
            (500, "<html>flash write failed</html>", "HTTP 500 from POST /update: flash write failed"),
            (404, "Not found: /update", "POST /update answered 404: no upload form there (an ElegantOTA 3 device needs the option dialect=elegantota3)"),
            (200, "FAIL", "device refused the image: FAIL"),
            (200, "Done", "answered 200 without \"Update Success!\": Done"),
        ]
        for (status, body, words) in cases {
            var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, now: 0)
            _ = push.handle(.started, now: 0)
            let failure = Self.failure(push.handle(.uploaded(status: status, body: body), now: 5))
            #expect(failure?.kind == .refused, "\(status)")
            #expect(failure?.reason.contains(words) == true, "\(String(describing: failure))")
        }
    }

    @Test("ElegantOTA 3: GET /ota/start first, then POST /ota/upload; OK confirms as usual")
    func elegantOTA3() {
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: true, dialect: .elegantOTA3, now: 0)
        #expect(push.uploadPath == "/ota/upload")
        #expect(push.handle(.started, now: 0) == [.start])
        #expect(push.handle(.startAnswered(status: 200, body: "OK"), now: 10) == [.upload])
        #expect(push.handle(.sending, now: 20) == [.progress(.downloading)])
        #expect(push.handle(.sent, now: 90) == [.progress(.installing)])
        #expect(push.handle(.uploaded(status: 200, body: "OK"), now: 100) == [.wait(until: 1100)])
        #expect(push.handle(.tick, now: 1100) == [.fetchVersion])
        #expect(push.handle(.version("2.0.0"), now: 1110) == [.succeeded(version: "2.0.0")])
    }

    @Test("ElegantOTA 3: the start's and the upload's refusals, 401 and 404 say what failed where")
    func elegantOTA3Refusals() {
        let starts: [(Int, String, String)] = [
            (400, "MD5 parameter invalid", "device refused to start the update (HTTP 400 from GET /ota/start): MD5 parameter invalid"),
            (400, "ERROR[4]: Not Enough Space\n", "(HTTP 400 from GET /ota/start): ERROR[4]: Not Enough Space"),
            (401, "", "authentication failed (HTTP 401 from GET /ota/start): the device wants a user and password and none is configured"),
            (
                404, "Not found",
                "GET /ota/start answered 404: the device runs no ElegantOTA 3 (dialect elegantota3); for ESP8266HTTPUpdateServer or ElegantOTA 2 use dialect update-server"
            ),
            (200, "Started", "device refused to start the update (HTTP 200 from GET /ota/start): Started"),
        ]
        for (status, body, words) in starts {
            var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, dialect: .elegantOTA3, now: 0)
            _ = push.handle(.started, now: 0)
            let failure = Self.failure(push.handle(.startAnswered(status: status, body: body), now: 5))
            #expect(failure?.kind == .refused && failure?.reason.contains(words) == true, "\(status): \(String(describing: failure))")
        }
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, dialect: .elegantOTA3, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.startAnswered(status: 200, body: "OK"), now: 5)
        let failure = Self.failure(push.handle(.uploaded(status: 400, body: "MD5 Failed: expected:aa, calculated:bb\n"), now: 50))
        #expect(failure == PushFailure(.refused, "device refused the image (HTTP 400 from POST /ota/upload): MD5 Failed: expected:aa, calculated:bb"))
    }

    @Test("ElegantOTA 3: an unreachable start is retried until the retry timeout, then network naming GET /ota/start")
    func elegantOTA3Unreachable() {
        var timing = HTTPUploadPush.Timing()
        timing.retry.retryTimeout = 2
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, dialect: .elegantOTA3, timing: timing, now: 0)
        _ = push.handle(.started, now: 0)
        var now: Int64 = 0
        var outcome: PushFailure?
        for _ in 0..<100 {
            let actions = push.handle(.startFailed("connection refused"), now: now)
            if let failure = Self.failure(actions) { outcome = failure; break }
            guard case .wait(let until)? = actions.first else { Issue.record("expected a wait: \(actions)"); return }
            now = until
            #expect(push.handle(.tick, now: now) == [.start])
        }
        #expect(outcome?.kind == .network && outcome?.reason.contains("device unreachable for GET /ota/start") == true, "\(String(describing: outcome))")
        #expect(now > 0 && now <= 3000)
    }

    @Test("connect failures before any byte are retried until the retry timeout, then network")
    func retries() {
        var timing = HTTPUploadPush.Timing()
        timing.retry.retryTimeout = 3
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, timing: timing, now: 0)
        _ = push.handle(.started, now: 0)
        var now: Int64 = 0
        var uploads = 1
        var outcome: PushFailure?
        for _ in 0..<100 {
            let actions = push.handle(.uploadFailed("connection refused", sentBytes: 0), now: now)
            if let failure = Self.failure(actions) { outcome = failure; break }
            guard case .wait(let until)? = actions.first else { Issue.record("expected a wait: \(actions)"); return }
            #expect(until > now)
            now = until
            #expect(push.handle(.tick, now: now) == [.upload])
            uploads += 1
        }
        #expect(uploads > 1, "retried")
        #expect(outcome?.kind == .network)
        #expect(outcome?.reason.contains("device unreachable for POST /update") == true, "\(String(describing: outcome))")
        #expect(now <= 4000, "within the retry timeout (plus one backoff)")
    }

    @Test("a connection lost mid-upload is network, with how far it got, and not retried")
    func midUpload() {
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.sending, now: 1)
        let failure = Self.failure(push.handle(.uploadFailed("connection reset by peer", sentBytes: 500), now: 5))
        #expect(failure?.kind == .network)
        #expect(failure?.reason == "connection lost during POST /update after 500 of 1000 bytes: connection reset by peer")
    }

    @Test("the old version after the device went away and came back: rebooted-into-old")
    func rebootedIntoOld() {
        var push = Self.confirming()
        _ = push.handle(.versionFailed("connection refused"), now: 1110)
        _ = push.handle(.tick, now: 2110)
        let failure = Self.failure(push.handle(.version("1.0.0"), now: 2120))
        #expect(failure?.kind == .rebootedIntoOld)
        #expect(failure?.reason == "device rebooted and reports 1.0.0, not 2.0.0 (it ran 1.0.0 before)")
    }

    @Test("the old version before the device went away is waited out, up to the reboot grace")
    func oldBeforeReboot() {
        var push = Self.confirming()
        #expect(push.handle(.version("1.0.0"), now: 1110) == [.wait(until: 2110)])
        _ = push.handle(.tick, now: 30_000)
        #expect(push.handle(.version("1.0.0"), now: 30_050) == [.wait(until: 31_050)])
        _ = push.handle(.tick, now: 31_050)
        let failure = Self.failure(push.handle(.version("1.0.0"), now: 31_060))
        #expect(failure?.kind == .rebootedIntoOld)
        #expect(failure?.reason.contains("still reports 30 s after the upload: 1.0.0") == true, "\(String(describing: failure))")
    }

    @Test("a device that never answers a version again: timeout after the unreachable limit")
    func neverBack() {
        var timing = HTTPUploadPush.Timing()
        timing.unreachableLimit = 5000
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, timing: timing, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.uploaded(status: 200, body: Self.success), now: 100)
        #expect(push.handle(.versionFailed("refused"), now: 1100) == [.wait(until: 2100)])
        #expect(push.handle(.versionFailed("refused"), now: 6100) == [.wait(until: 7100)])
        let failure = Self.failure(push.handle(.versionFailed("refused"), now: 7100))
        #expect(failure?.kind == .timeout)
        #expect(failure?.reason.contains("within 5 s of its reboot") == true)
    }

    @Test("the deadline ends any stage as timeout")
    func deadline() {
        var timing = HTTPUploadPush.Timing()
        timing.deadline = 10_000
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, timing: timing, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(.uploaded(status: 200, body: Self.success), now: 100)
        _ = push.handle(.version("1.0.0"), now: 1100)
        let failure = Self.failure(push.handle(.tick, now: 10_001))
        #expect(failure?.kind == .timeout)
        #expect(failure?.reason == "no confirmed version within 10 s (device last reported 1.0.0)")
    }

    @Test("an image without a version cannot be confirmed: refused before sending; an unreadable file too")
    func unconfirmable() {
        var image = Self.image
        image.version = nil
        var push = HTTPUploadPush(image: image, target: Self.device, authenticates: false, now: 0)
        #expect(Self.failure(push.handle(.started, now: 0))?.kind == .refused)
        var unreadable = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: false, now: 0)
        _ = unreadable.handle(.started, now: 0)
        #expect(Self.failure(unreadable.handle(.imageUnreadable("cannot open /x"), now: 1))?.reason == "image not sent: cannot open /x")
    }

    @Test("the confirmation answer: JSON version, or the first plain-text line")
    func versionAnswer() {
        #expect(HTTPUploadAdapter.version(fromBody: "{\"version\":\"2.0.0\",\"uptime\":3}") == "2.0.0")
        #expect(HTTPUploadAdapter.version(fromBody: "2.0.0\n") == "2.0.0")
        #expect(HTTPUploadAdapter.version(fromBody: "{\"uptime\":3}") == nil)
        #expect(HTTPUploadAdapter.version(fromBody: "  ") == nil)
        #expect(HTTPUploadAdapter.version(fromBody: "<html><body>hi</body></html>") == nil)
    }

    @Test("credentials: the basic-auth header is right, and no printed form shows user or password")
    func credentialsRedacted() {
        let credentials = PushCredentials(username: "admin-user", password: "s3cret-pass")
        #expect(credentials.authorization == "Basic YWRtaW4tdXNlcjpzM2NyZXQtcGFzcw==")
        let adapter = HTTPUploadAdapter(credentials: credentials)
        var dumped = ""
        dump(adapter, to: &dumped)
        var dumpedCredentials = ""
        dump(credentials, to: &dumpedCredentials)
        let printed = [
            "\(credentials)", String(reflecting: credentials), String(describing: Optional(credentials)),
            "\(adapter)", String(reflecting: adapter), dumped, dumpedCredentials,
        ]
        for text in printed {
            #expect(!text.contains("s3cret-pass") && !text.contains("admin-user") && !text.contains("YWRtaW4"), "\(text)")
        }
        // No failure the machine can produce carries them: it never holds them.
        var push = HTTPUploadPush(image: Self.image, target: Self.device, authenticates: true, now: 0)
        _ = push.handle(.started, now: 0)
        let failure = Self.failure(push.handle(.uploaded(status: 401, body: ""), now: 1))
        #expect(failure.map { !"\($0)".contains("s3cret-pass") && !String(reflecting: push).contains("s3cret-pass") } == true)
    }
}
