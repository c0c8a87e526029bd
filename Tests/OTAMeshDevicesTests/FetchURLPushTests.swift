import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import Testing

/// The fetch-url push state machine and its per-device command template, driven by hand: every
/// transition, every failure mode, every template error.
@Suite("fetch-url push")
struct FetchURLPushTests {
    static let image = PushImage(
        path: "lamp/esp32/2.0.0.bin", sha256: "ab12", length: 1000, version: "2.0.0",
        file: "/dev/null", url: "http://10.0.1.1:8070/v1/targets/lamp/esp32/2.0.0.bin", variant: "esp32")
    static let device = PushTarget(id: "lamp-1", family: .fetchURL, host: "10.0.1.6", port: 80, version: "1.0.0")

    static func failure(_ actions: [FetchURLPush.Action]) -> PushFailure? {
        for case .failed(let failure) in actions { return failure }
        return nil
    }

    static func machine(_ options: [String: String] = [:], timing: PushTiming = PushTiming(), image: PushImage = image) throws -> FetchURLPush {
        FetchURLPush(image: image, target: device, request: try FetchURLRequest(options: options), authenticates: false, timing: timing, now: 0)
    }

    /// A machine whose command was accepted at t = 100: confirming, first poll due at 1100.
    static func confirming(_ options: [String: String] = [:]) throws -> FetchURLPush {
        var push = try machine(options)
        let actions = push.handle(.started, now: 0)
        guard case .send? = actions.first else { Issue.record("expected a send: \(actions)"); return push }
        #expect(push.handle(.answered(status: 202, body: "{\"ok\":true}"), now: 100) == [.progress(.downloading), .wait(until: 1100)])
        #expect(push.handle(.tick, now: 1100) == [.fetchVersion])
        return push
    }

    @Test("the default command: POST /ota with {\"url\":…} as JSON")
    func defaultCommand() throws {
        var push = try Self.machine()
        let command = FetchURLPush.Command(
            method: "POST", path: "/ota", contentType: "application/json",
            body: "{\"url\":\"http://10.0.1.1:8070/v1/targets/lamp/esp32/2.0.0.bin\"}")
        #expect(push.handle(.started, now: 0) == [.send(command)])
    }

    @Test("a whole push: accepted, the device away while it reboots, back on the new version")
    func succeeds() throws {
        var push = try Self.confirming()
        #expect(push.handle(.version(.init(version: "1.0.0")), now: 1110) == [.wait(until: 2110)], "still downloading")
        _ = push.handle(.tick, now: 2110)
        #expect(push.handle(.versionFailed("connection refused"), now: 2120) == [.progress(.installing), .wait(until: 3120)])
        _ = push.handle(.tick, now: 3120)
        #expect(push.handle(.version(.init(version: "2.0.0", variant: "esp32")), now: 3130) == [.succeeded(version: "2.0.0")])
        #expect(push.handle(.tick, now: 4000) == [], "a finished push ignores further events")
    }

    @Test("each failure mode: refused (with status and body), 401, rebooted-into-old (seen or after the grace), wrong variant, timeout")
    func failures() throws {
        // 4xx / 5xx: refused with the status and an excerpt of the body.
        for (status, body, words) in [
            (403, "{\"error\":\"OTA is disabled\"}", "HTTP 403 from POST /ota: {\"error\":\"OTA is disabled\"}"),
            (500, "<h1>boom</h1>", "HTTP 500 from POST /ota: boom"),
            (301, "", "HTTP 301 from POST /ota"),
        ] {
            var push = try Self.machine()
            _ = push.handle(.started, now: 0)
            let failure = Self.failure(push.handle(.answered(status: status, body: body), now: 5))
            #expect(failure?.kind == .refused && failure?.reason == words, "\(String(describing: failure))")
        }
        var auth = try Self.machine()
        _ = auth.handle(.started, now: 0)
        #expect(Self.failure(auth.handle(.answered(status: 401, body: ""), now: 5))?.reason.contains("authentication failed") == true)

        // Went away and came back old.
        var old = try Self.confirming()
        _ = old.handle(.versionFailed("refused"), now: 1110)
        _ = old.handle(.tick, now: 2110)
        let rebooted = Self.failure(old.handle(.version(.init(version: "1.0.0")), now: 2120))
        #expect(rebooted?.kind == .rebootedIntoOld && rebooted?.reason == "device rebooted and reports 1.0.0, not 2.0.0 (it ran 1.0.0 before)")

        // The new version, but a variant the image is not for.
        var variant = try Self.confirming()
        let wrong = Self.failure(variant.handle(.version(.init(version: "2.0.0", variant: "esp32s3-n16r8")), now: 1110))
        #expect(wrong?.kind == .rebootedIntoOld && wrong?.reason.contains("as variant esp32s3-n16r8") == true, "\(String(describing: wrong))")

        // Still old after the (per-device) grace, whether or not the restart was seen.
        var stuck = try Self.confirming(["reboot_grace": "5"])
        #expect(stuck.handle(.version(.init(version: "1.0.0")), now: 5000) == [.wait(until: 6000)])
        _ = stuck.handle(.tick, now: 6000)
        let never = Self.failure(stuck.handle(.version(.init(version: "1.0.0")), now: 6010))
        #expect(never?.kind == .rebootedIntoOld, "\(String(describing: never))")
        #expect(
            never?.reason == "device still reports 1.0.0, not 2.0.0, 5 s after it took the command "
                + "(it rebooted into its old firmware, or its download of the image failed) (it ran 1.0.0 before)")

        // Gone for longer than the unreachable limit.
        var timing = PushTiming()
        timing.unreachableLimit = 5000
        var gone = try Self.machine(timing: timing)
        _ = gone.handle(.started, now: 0)
        _ = gone.handle(.answered(status: 200, body: ""), now: 100)
        _ = gone.handle(.versionFailed("refused"), now: 1100)
        let timeout = Self.failure(gone.handle(.versionFailed("refused"), now: 7100))
        #expect(timeout?.kind == .timeout)

        // The deadline ends any stage.
        timing.deadline = 10_000
        var late = try Self.machine(timing: timing)
        _ = late.handle(.started, now: 0)
        #expect(Self.failure(late.handle(.tick, now: 10_001))?.reason == "no confirmed version within 10 s")
    }

    @Test("no answer before acceptance is retried until the retry timeout, then network")
    func retries() throws {
        var timing = PushTiming()
        timing.retry.retryTimeout = 3
        var push = try Self.machine(timing: timing)
        _ = push.handle(.started, now: 0)
        var now: Int64 = 0
        var sends = 1
        var outcome: PushFailure?
        for _ in 0..<100 {
            let actions = push.handle(.sendFailed("connection refused"), now: now)
            if let failure = Self.failure(actions) { outcome = failure; break }
            guard case .wait(let until)? = actions.first else { Issue.record("expected a wait: \(actions)"); return }
            now = until
            guard case .send? = push.handle(.tick, now: now).first else { Issue.record("expected a send"); return }
            sends += 1
        }
        #expect(sends > 1 && outcome?.kind == .network && outcome?.reason.contains("device unreachable for POST /ota") == true)
        #expect(now <= 4000)
    }

    @Test("accept: only the listed codes count as accepted")
    func acceptCodes() throws {
        var push = try Self.machine(["accept": "202"])
        _ = push.handle(.started, now: 0)
        let failure = Self.failure(push.handle(.answered(status: 200, body: "ok"), now: 5))
        #expect(failure?.kind == .refused && failure?.reason == "HTTP 200 from POST /ota (accepted: 202): ok")
        var classes = try Self.machine(["accept": "2xx,302"])
        _ = classes.handle(.started, now: 0)
        #expect(classes.handle(.answered(status: 302, body: ""), now: 5).contains(.progress(.downloading)))
    }

    @Test("an image without a version or without an http(s) URL is refused before anything is sent")
    func unconfirmable() throws {
        var image = Self.image
        image.version = nil
        var noVersion = try Self.machine(image: image)
        #expect(Self.failure(noVersion.handle(.started, now: 0))?.kind == .refused)
        image = Self.image
        image.url = nil
        var noURL = try Self.machine(image: image)
        #expect(Self.failure(noURL.handle(.started, now: 0))?.reason.contains("no http:// or https:// URL") == true)
    }

    @Test("templates: placeholders, JSON escaping, form and path percent-encoding, GET with the URL in the query")
    func templates() throws {
        var image = Self.image
        image.url = "http://gw/a b\"c?x=1&y=2"
        let values = FetchURLRequest.values(image: image, device: Self.device)
        let json = try FetchURLRequest(options: [
            "body": "{\"u\":\"{url}\",\"v\":\"{version}\",\"s\":{size},\"h\":\"{sha256}\",\"d\":\"{device}\",\"p\":\"{path}\"}"
        ])
        #expect(
            json.renderedBody(values)
                == "{\"u\":\"http://gw/a b\\\"c?x=1&y=2\",\"v\":\"2.0.0\",\"s\":1000,\"h\":\"ab12\",\"d\":\"lamp-1\",\"p\":\"lamp/esp32/2.0.0.bin\"}")
        let form = try FetchURLRequest(options: ["body": "url={url}&v={version}", "content_type": "application/x-www-form-urlencoded"])
        #expect(form.renderedBody(values) == "url=http%3A%2F%2Fgw%2Fa%20b%22c%3Fx%3D1%26y%3D2&v=2.0.0")
        let text = try FetchURLRequest(options: ["body": "{url}", "content_type": "text/plain"])
        #expect(text.renderedBody(values) == "http://gw/a b\"c?x=1&y=2")
        let get = try FetchURLRequest(options: ["method": "get", "path": "/cm?cmnd=Upgrade%20{url}"])
        #expect(get.method == "GET" && get.body.isEmpty)
        #expect(get.renderedPath(values) == "/cm?cmnd=Upgrade%20http%3A%2F%2Fgw%2Fa%20b%22c%3Fx%3D1%26y%3D2")
    }

    @Test("template errors are typed and name the option: unknown placeholder, bad method, unbalanced brace, bad path, accept, port")
    func templateErrors() {
        let cases: [([String: String], FetchURLRequest.OptionError)] = [
            (["body": "{\"url\":\"{uri}\"}"], .unknownPlaceholder(option: "body", placeholder: "uri")),
            (["path": "/ota/{name}"], .unknownPlaceholder(option: "path", placeholder: "name")),
            (["method": "FETCH"], .badMethod("FETCH")),
            (["body": "{\"url\":\"{url\"}"], .unbalancedBrace(option: "body", value: "{\"url\":\"{url\"}")),
            (["path": "ota"], .badPath(option: "path", value: "ota")),
            (["version_path": "/v v"], .badPath(option: "version_path", value: "/v v")),
            (["accept": "ok"], .badAccept("ok")),
            (["accept": "9xx"], .badAccept("9xx")),
            (["version_port": "70000"], .badPort("70000")),
            (["reboot_grace": "-1"], .badGrace("-1")),
            (["method": "GET", "body": "{url}"], .bodyWithGet),
            (["upload_path": "/x"], .unknownOption("upload_path")),
        ]
        for (options, expected) in cases {
            #expect(throws: expected, "\(options)") { try FetchURLRequest(options: options) }
        }
        #expect(
            FetchURLRequest.OptionError.unknownPlaceholder(option: "body", placeholder: "uri").description
                == "option body: unknown placeholder {uri} (known: {url}, {version}, {sha256}, {size}, {path}, {device})")
        #expect(FetchURLRequest.OptionError.badMethod("FETCH").description.contains("GET, POST, PUT, PATCH"))
    }

    @Test("the version answer: JSON with version and variant (or firmware), or plain text")
    func versionAnswer() {
        #expect(FetchURLAdapter.reported(fromBody: "{\"version\":\"2.0.0\",\"variant\":\"esp32\"}") == .init(version: "2.0.0", variant: "esp32"))
        #expect(FetchURLAdapter.reported(fromBody: "{\"version\":\"2.0.0\",\"firmware\":\"esp32-eth\"}") == .init(version: "2.0.0", variant: "esp32-eth"))
        #expect(FetchURLAdapter.reported(fromBody: "2.0.0\n") == .init(version: "2.0.0"))
        #expect(FetchURLAdapter.reported(fromBody: "{\"uptime\":1}") == nil)
    }
}
