import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import Testing

/// The projectMM push state machine, driven by hand: every transition and every failure mode.
@Suite("projectMM push")
struct ProjectMMPushTests {
    static let image = PushImage(
        path: "projectmm/esp32/2.0.0.bin", sha256: "ab", length: 1000, version: "2.0.0",
        file: "/dev/null", url: "http://10.0.0.1:8070/v1/targets/projectmm/esp32/2.0.0.bin", variant: "esp32")
    static let device = PushTarget(id: "mm-1", family: .projectMM, host: "10.0.1.5", port: 80, variant: "esp32", version: "1.0.0")

    static func status(_ phase: String, bytes: Int64 = 0, total: Int64 = 0, version: String = "1.0.0", firmware: String = "esp32") -> ProjectMMPush.Event {
        .status(ProjectMMStatus(phase: .init(phase), bytes: bytes, total: total, version: version, firmware: firmware))
    }

    /// A machine past the probe and a 202: following the device's status at t = 1000.
    static func following(image: PushImage = image) -> ProjectMMPush {
        var push = ProjectMMPush(image: image, target: device, now: 0)
        #expect(push.handle(.started, now: 0) == [.fetchStatus])
        #expect(push.handle(status("idle"), now: 10) == [.post(body: "{\"url\":\"\(image.url!)\"}")])
        #expect(push.handle(.posted(status: 202, body: "{\"ok\":true}"), now: 20) == [.wait(until: 1020)])
        #expect(push.handle(.tick, now: 1020) == [.fetchStatus])
        return push
    }

    static func failure(_ actions: [ProjectMMPush.Action]) -> PushFailure? {
        for case .failed(let failure) in actions { return failure }
        return nil
    }

    @Test("variant rule: strip -eth…, then equal")
    func variants() {
        #expect(ProjectMMVariant.compatible("esp32", "esp32-eth"))
        #expect(ProjectMMVariant.compatible("esp32-eth-wifi", "esp32"))
        #expect(!ProjectMMVariant.compatible("esp32s3-n16r8", "esp32"))
        #expect(ProjectMMVariant.compatible("esp32s3-n16r8", "esp32s3-n16r8"))
        #expect(!ProjectMMVariant.compatible("esp32-16mb", "esp32"))
    }

    @Test("a whole push: starting, downloading with bytes, flashing, rebooting, unreachable, back on the new version")
    func success() {
        var push = Self.following()
        #expect(push.handle(Self.status("starting"), now: 1030) == [.wait(until: 2030)])
        #expect(push.handle(.tick, now: 2030) == [.fetchStatus])
        #expect(push.handle(Self.status("downloading"), now: 2040) == [.wait(until: 3040)])
        #expect(push.handle(Self.status("flashing", bytes: 400, total: 1000), now: 3040) == [.progress(.downloading), .wait(until: 4040)])
        #expect(push.handle(Self.status("flashing", bytes: 1000, total: 1000), now: 4040) == [.progress(.installing), .wait(until: 5040)])
        #expect(push.handle(Self.status("rebooting", bytes: 1000, total: 1000), now: 5040) == [.wait(until: 6040)])
        #expect(push.handle(.statusFailed("connection refused"), now: 6040) == [.wait(until: 7040)])
        #expect(push.handle(.statusFailed("connection refused"), now: 7040) == [.wait(until: 8040)])
        #expect(push.handle(Self.status("idle", version: "2.0.0", firmware: "esp32"), now: 8040) == [.succeeded(version: "2.0.0")])
        #expect(push.handle(.tick, now: 9000) == [], "a finished push ignores further events")
    }

    @Test("while bytes flow, the next poll comes when the device's rate says the image is across, never sooner than a tenth of the interval")
    func pollsAtTheTransfersEnd() {
        var push = Self.following()  // accepted at 20
        // 600 of 1000 bytes in 1000 ms: the rest takes ~667 ms; poll then, plus 50 ms.
        #expect(push.handle(Self.status("downloading", bytes: 600, total: 1000), now: 1020) == [.progress(.downloading), .wait(until: 1736)])
        #expect(push.handle(.tick, now: 1736) == [.fetchStatus])
        // Not quite there: the last 10 bytes at the new rate take ~18 ms (+50), but the next poll waits at least 100 ms.
        #expect(push.handle(Self.status("downloading", bytes: 990, total: 1000), now: 1736) == [.wait(until: 1836)])
        #expect(push.handle(Self.status("downloading", bytes: 1000, total: 1000), now: 1836) == [.progress(.installing), .wait(until: 2836)])

        var slow = Self.following()
        // A slow device (1 % a second): the usual interval.
        #expect(slow.handle(Self.status("downloading", bytes: 10, total: 1000), now: 1020) == [.progress(.downloading), .wait(until: 2020)])
    }

    @Test("a fast device whose rebooting phase the polls miss still reports both progress phases")
    func missedPhases() {
        var push = Self.following()
        #expect(
            push.handle(Self.status("idle", version: "2.0.0"), now: 1030) == [.progress(.downloading), .progress(.installing), .succeeded(version: "2.0.0")])
    }

    @Test("incompatible variants are refused before anything is sent")
    func wrongVariant() {
        var push = ProjectMMPush(image: Self.image, target: Self.device, now: 0)
        _ = push.handle(.started, now: 0)
        let actions = push.handle(Self.status("idle", firmware: "esp32s3-n16r8"), now: 5)
        #expect(actions.count == 1 && !actions.contains { if case .post = $0 { true } else { false } })
        let failure = Self.failure(actions)
        #expect(failure?.kind == .refused)
        #expect(failure?.reason.contains("esp32s3-n16r8") == true && failure?.reason.contains("not compatible") == true)

        // The -eth variant of the same chip is fine.
        var eth = ProjectMMPush(image: Self.image, target: Self.device, now: 0)
        _ = eth.handle(.started, now: 0)
        #expect(eth.handle(Self.status("idle", firmware: "esp32-eth"), now: 5).first.map { if case .post = $0 { true } else { false } } == true)
    }

    @Test("no variant on the image or the device, no URL, or a busy device: refused before sending")
    func refusedBeforeSending() {
        var noVariant = Self.image
        noVariant.variant = nil
        var push = ProjectMMPush(image: noVariant, target: Self.device, now: 0)
        _ = push.handle(.started, now: 0)
        #expect(Self.failure(push.handle(Self.status("idle"), now: 1))?.kind == .refused)

        var unknown = ProjectMMPush(image: Self.image, target: PushTarget(id: "x", family: .projectMM, host: "h", port: 80), now: 0)
        _ = unknown.handle(.started, now: 0)
        let bare = ProjectMMPush.Event.status(ProjectMMStatus(phase: .idle, version: "1.0.0", firmware: nil))
        #expect(Self.failure(unknown.handle(bare, now: 1))?.reason.contains("no firmware variant") == true)

        var noURL = Self.image
        noURL.url = nil
        var push2 = ProjectMMPush(image: noURL, target: Self.device, now: 0)
        _ = push2.handle(.started, now: 0)
        #expect(Self.failure(push2.handle(Self.status("idle"), now: 1))?.kind == .refused)

        var busy = ProjectMMPush(image: Self.image, target: Self.device, now: 0)
        _ = busy.handle(.started, now: 0)
        #expect(Self.failure(busy.handle(Self.status("downloading"), now: 1))?.reason.contains("busy") == true)
    }

    @Test("a device already running the version succeeds without a push")
    func alreadyRunning() {
        var push = ProjectMMPush(image: Self.image, target: Self.device, now: 0)
        _ = push.handle(.started, now: 0)
        #expect(push.handle(Self.status("idle", version: "2.0.0"), now: 1) == [.succeeded(version: "2.0.0")])
    }

    @Test(
        "400, 500, 501 and other answers to the POST are refusals naming the status and reason",
        arguments: [
            (400, "not http"), (500, "out of memory"), (501, "no OTA"), (404, "expected 202"),
        ])
    func refusals(status: Int, words: String) {
        var push = ProjectMMPush(image: Self.image, target: Self.device, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(Self.status("idle"), now: 1)
        let failure = Self.failure(push.handle(.posted(status: status, body: "{\"error\":\"x\"}"), now: 2))
        #expect(failure?.kind == .refused)
        #expect(failure?.reason.contains("HTTP \(status)") == true && failure?.reason.contains(words) == true, "\(String(describing: failure))")
        #expect(failure?.reason.contains("{\"error\":\"x\"}") == true, "the device's own words are kept")
    }

    @Test("an unreachable device is retried under the retry-timeout policy, then fails as network")
    func unreachableBeforePost() {
        var timing = ProjectMMPush.Timing()
        timing.retry.retryTimeout = 10
        timing.retry.initialBackoff = 1
        timing.retry.maxBackoff = 1
        var push = ProjectMMPush(image: Self.image, target: Self.device, timing: timing, now: 0, random: 0.99)
        _ = push.handle(.started, now: 0)
        var now: Int64 = 0
        var last: [ProjectMMPush.Action] = []
        for _ in 0..<100 {
            last = push.handle(.statusFailed("connection refused"), now: now)
            guard case .wait(let until)? = last.first else { break }
            #expect(push.handle(.tick, now: until) == [.fetchStatus])
            now = until
        }
        let failure = Self.failure(last)
        #expect(failure?.kind == .network)
        #expect(failure?.reason.contains("connection refused") == true && failure?.reason.contains("retry timeout") == true)
        #expect(now >= 8000 && now < 11000, "retried for about the retry timeout, not longer: \(now)")

        // A device that comes back within the timeout gets its POST.
        var back = ProjectMMPush(image: Self.image, target: Self.device, timing: timing, now: 0)
        _ = back.handle(.started, now: 0)
        guard case .wait(let until)? = back.handle(.statusFailed("reset"), now: 0).first else { Issue.record("no wait"); return }
        #expect(back.handle(.tick, now: until) == [.fetchStatus])
        #expect(back.handle(Self.status("idle"), now: until + 1).first.map { if case .post = $0 { true } else { false } } == true)
    }

    @Test("a POST whose connection fails is retried, then fails as network")
    func postRetried() {
        var timing = ProjectMMPush.Timing()
        timing.retry.retryTimeout = 2
        var push = ProjectMMPush(image: Self.image, target: Self.device, timing: timing, now: 0)
        _ = push.handle(.started, now: 0)
        _ = push.handle(Self.status("idle"), now: 1)
        guard case .wait(let until)? = push.handle(.postFailed("connection reset"), now: 2).first else { Issue.record("no retry"); return }
        #expect(push.handle(.tick, now: until).first.map { if case .post = $0 { true } else { false } } == true)
        var now = until
        var failure: PushFailure?
        for _ in 0..<100 {
            let actions = push.handle(.postFailed("connection reset"), now: now)
            if let found = Self.failure(actions) { failure = found; break }
            guard case .wait(let next)? = actions.first else { break }
            _ = push.handle(.tick, now: next)
            now = next
        }
        #expect(failure?.kind == .network && failure?.reason.contains("POST /api/firmware/url failed") == true)
    }

    @Test("device errors: ota begin / perform are network failures, the others refusals")
    func deviceErrors() {
        var perform = Self.following()
        let network = Self.failure(perform.handle(Self.status("error: ota perform ESP_ERR_HTTP_EOF"), now: 1030))
        #expect(network == PushFailure(.network, "device reported error: ota perform ESP_ERR_HTTP_EOF"))
        var begin = Self.following()
        #expect(Self.failure(begin.handle(Self.status("error: ota begin ESP_ERR_HTTP_CONNECT"), now: 1030))?.kind == .network)
        for reason in ["incomplete download", "ota finish ESP_ERR_OTA_VALIDATE_FAILED", "task create failed"] {
            var push = Self.following()
            #expect(Self.failure(push.handle(Self.status("error: " + reason), now: 1030)) == PushFailure(.refused, "device reported error: \(reason)"))
        }
    }

    @Test("back on the old version after taking the whole image: rebooted-into-old")
    func rebootedIntoOld() {
        var push = Self.following()
        _ = push.handle(Self.status("flashing", bytes: 1000, total: 1000), now: 1030)
        _ = push.handle(Self.status("rebooting", bytes: 1000, total: 1000), now: 2030)
        _ = push.handle(.statusFailed("refused"), now: 3030)
        let failure = Self.failure(push.handle(Self.status("idle", version: "1.0.0"), now: 4030))
        #expect(failure?.kind == .rebootedIntoOld)
        #expect(failure?.reason == "device rebooted and reports 1.0.0, not 2.0.0 (it ran 1.0.0 before)")
    }

    @Test("gone mid-transfer and back on the old version: network (the push may be retried)")
    func diedMidTransfer() {
        var push = Self.following()
        _ = push.handle(Self.status("flashing", bytes: 500, total: 1000), now: 1030)
        _ = push.handle(.statusFailed("connection refused"), now: 2030)
        let failure = Self.failure(push.handle(Self.status("idle", version: "1.0.0"), now: 3030))
        #expect(failure?.kind == .network)
        #expect(failure?.reason == "device went away during flashing at 500 of 1000 bytes and came back running 1.0.0, not 2.0.0")
    }

    @Test("idle on the old version straight after a partial download, unseen restart: network too")
    func restartedUnseen() {
        var push = Self.following()
        _ = push.handle(Self.status("flashing", bytes: 500, total: 1000), now: 1030)
        let failure = Self.failure(push.handle(Self.status("idle", version: "1.0.0"), now: 2030))
        #expect(failure == PushFailure(.network, "device restarted during flashing at 500 of 1000 bytes and came back running 1.0.0, not 2.0.0"))
    }

    @Test("the new version on an incompatible variant is not a success")
    func cameBackAsOtherVariant() {
        var push = Self.following()
        _ = push.handle(Self.status("rebooting", bytes: 1000, total: 1000), now: 1030)
        let failure = Self.failure(push.handle(Self.status("idle", version: "2.0.0", firmware: "esp32s3-n16r8"), now: 2030))
        #expect(failure?.kind == .rebootedIntoOld && failure?.reason.contains("as variant esp32s3-n16r8") == true)
    }

    @Test("unreachable too long: network while downloading, timeout after rebooting; the deadline ends everything")
    func deadlines() {
        var timing = ProjectMMPush.Timing()
        timing.unreachableLimit = 5000
        timing.deadline = 60_000
        var image = Self.image
        image.url = "http://gw/img"
        func machine() -> ProjectMMPush {
            var push = ProjectMMPush(image: image, target: Self.device, timing: timing, now: 0)
            _ = push.handle(.started, now: 0)
            _ = push.handle(Self.status("idle"), now: 1)
            _ = push.handle(.posted(status: 202, body: ""), now: 2)
            return push
        }
        var downloading = machine()
        _ = downloading.handle(Self.status("flashing", bytes: 10, total: 1000), now: 1000)
        #expect(downloading.handle(.statusFailed("refused"), now: 2000) == [.wait(until: 3000)])
        let lost = Self.failure(downloading.handle(.statusFailed("refused"), now: 7001))
        #expect(
            lost?.kind == .network && lost?.reason.contains("unreachable for 5 s after phase flashing at 10 of 1000 bytes") == true,
            "\(String(describing: lost))")

        var rebooting = machine()
        _ = rebooting.handle(Self.status("rebooting", bytes: 1000, total: 1000), now: 1000)
        _ = rebooting.handle(.statusFailed("refused"), now: 2000)
        #expect(Self.failure(rebooting.handle(.statusFailed("refused"), now: 7001))?.kind == .timeout)

        var slow = machine()
        _ = slow.handle(Self.status("flashing", bytes: 10, total: 1000), now: 1000)
        let late = Self.failure(slow.handle(Self.status("flashing", bytes: 20, total: 1000), now: 60_001))
        #expect(late?.kind == .timeout && late?.reason.contains("no confirmed version within 60 s") == true)
    }

    @Test("the POST body is JSON with the URL escaped")
    func body() {
        var image = Self.image
        image.url = "http://gw/a\"b"
        var push = ProjectMMPush(image: image, target: Self.device, now: 0)
        _ = push.handle(.started, now: 0)
        #expect(push.handle(Self.status("idle"), now: 1) == [.post(body: "{\"url\":\"http://gw/a\\\"b\"}")])
    }

    @Test("/api/state: phase, bytes/total, version and firmware; not projectMM → unreadable")
    func parse() throws {
        let body = """
            {"modules":[{"name":"System","type":"SystemModule","controls":[{"name":"firmware","type":"display","value":"esp32-eth"}]},
            {"name":"FirmwareUpdate","type":"FirmwareUpdateModule","status":"flashing","severity":"status","controls":[
            {"name":"version","type":"display","value":"1.2.0-dev.7"},{"name":"update_pct","type":"progress","value":512,"max":2048}]}]}
            """
        let status = try ProjectMMStatus.parse(Array(body.utf8))
        #expect(status == ProjectMMStatus(phase: .flashing, bytes: 512, total: 2048, version: "1.2.0-dev.7", firmware: "esp32-eth"))
        let idle = try ProjectMMStatus.parse(Array(#"{"modules":[{"name":"F","type":"FirmwareUpdateModule","controls":[]}]}"#.utf8))
        #expect(idle.phase == .idle && idle.version == nil)
        #expect(ProjectMMStatus.Phase("error: incomplete download") == .error("incomplete download"))
        #expect(throws: ProjectMMStatus.Unreadable.self) { try ProjectMMStatus.parse(Array("<html>".utf8)) }
        #expect(throws: ProjectMMStatus.Unreadable.self) { try ProjectMMStatus.parse(Array(#"{"modules":[]}"#.utf8)) }
    }

    @Test("registry addresses split into host and port")
    func addresses() {
        #expect(PushTarget.hostAndPort("10.0.0.5", defaultPort: 80).host == "10.0.0.5" && PushTarget.hostAndPort("10.0.0.5", defaultPort: 80).port == 80)
        #expect(
            PushTarget.hostAndPort("127.0.0.1:18000", defaultPort: 80).host == "127.0.0.1"
                && PushTarget.hostAndPort("127.0.0.1:18000", defaultPort: 80).port == 18000)
        #expect(PushTarget.hostAndPort("[::1]:8080", defaultPort: 80).host == "::1" && PushTarget.hostAndPort("[::1]:8080", defaultPort: 80).port == 8080)
        #expect(PushTarget.hostAndPort("fe80::1", defaultPort: 80).host == "fe80::1" && PushTarget.hostAndPort("fe80::1", defaultPort: 80).port == 80)
    }
}
