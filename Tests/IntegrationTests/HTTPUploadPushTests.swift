import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP upload adapter (through `otamesh device push --family http-upload`) against the
/// devicesim twin (`otamesh-devicesim serve --family http-upload`, ESP8266HTTPUpdateServer's
/// form): success with and without basic auth, and each fault's typed failure. The image is an
/// ESP32 app image (the twin checks it as the firmware's Update.end would).
@Suite("HTTP upload push", .serialized)
struct HTTPUploadPushIntegrationTests {
    static func start(_ extra: [String]) throws -> PushTwin {
        try PushTwin.start(family: "http-upload", ["--version", "1.0.0", "--reboot-delay-ms", "100", "--reboot-ms", "800", "--duration", "300"] + extra)
    }

    /// `otamesh device push --family http-upload`: (exit status, progress lines, the outcome object).
    static func push(file: String, to address: String, extra: [String] = []) throws -> (Int32, [String], [String: String]) {
        try PushTwin.push(
            family: "http-upload", id: "up", to: address,
            [
                "--file", file, "--version", "2.0.0",
                "--poll-ms", "100", "--deadline", "120", "--unreachable", "30",
                "--retry-timeout", "3", "--request-timeout", "5", "--reboot-grace", "5",
            ] + extra)
    }

    /// An ESP32 app image of version 2.0.0 (`size` bytes) and a file holding the twin's password.
    static func files(_ dir: TemporaryDirectory, name: String = "lamp-2.0.0.bin", size: Int = 300_000) throws -> (image: String, password: String) {
        let file = dir.file(name)
        let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", "2.0.0", "--size", String(size), "-o", file])
        #expect(made.0 == 0, "\(made.2)")
        let password = dir.file("password")
        try "twin-secret-7\n".write(toFile: password, atomically: true, encoding: .utf8)
        return (file, password)
    }

    @Test("a push succeeds on the new version, with basic auth too; every fault gives its typed failure")
    func pushes() throws {
        let dir = try TemporaryDirectory()
        let (file, passwordFile) = try Self.files(dir)

        let good = try Self.start([])
        let (status, progress, outcome) = try Self.push(file: file, to: good.address)
        #expect(status == 0 && outcome["outcome"] == "succeeded" && outcome["version"] == "2.0.0", "\(outcome) \(good.child.stdout.text)")
        #expect(progress == ["up: downloading", "up: installing"])
        #expect(good.count("booted") == 1 && good.count("installed") == 1)
        good.stop()

        let locked = try Self.start(["--user", "admin", "--password", "twin-secret-7"])
        let (lockedStatus, _, lockedOutcome) = try Self.push(file: file, to: locked.address, extra: ["--user", "admin", "--password-file", passwordFile])
        #expect(lockedStatus == 0 && lockedOutcome["version"] == "2.0.0", "\(lockedOutcome) \(locked.child.stdout.text)")
        locked.stop()

        let cases: [(twin: [String], push: [String], kind: String, words: String)] = [
            (["--user", "admin", "--password", "twin-secret-7"], [], "refused", "authentication failed"),
            (["--user", "admin", "--password", "other"], ["--user", "admin", "--password-file", passwordFile], "refused", "authentication failed"),
            (["--fail", "update-error"], [], "refused", "Update error: ERROR[4]: Not Enough Space"),
            (["--variant", "esp32s3"], [], "refused", "Update error"),
            (["--fail", "die-mid-transfer"], [], "network", "connection lost during POST /update"),
            (["--fail", "reboot-old"], [], "rebooted-into-old", "1.0.0, not 2.0.0"),
        ]
        for item in cases {
            let twin = try Self.start(item.twin)
            defer { twin.stop() }
            let (status, out, outcome) = try Self.push(file: file, to: twin.address, extra: item.push)
            #expect(status == 1, "\(item.twin): \(outcome)")
            #expect(outcome["kind"] == item.kind, "\(item.twin): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(item.twin): \(outcome)")
            #expect(!out.joined().contains("twin-secret-7") && !(outcome["reason"] ?? "").contains("twin-secret-7"))
        }
    }

    @Test("ElegantOTA 3 (--dialect elegantota3): start with the MD5, upload, reboot 2 s later; its faults and a wrong dialect say what failed")
    func elegantOTA3() throws {
        let dir = try TemporaryDirectory()
        let (file, passwordFile) = try Self.files(dir)
        let elegant = ["--dialect", "elegantota3", "--reboot-delay-ms", "2000"]
        let credentials = ["--user", "admin", "--password-file", passwordFile]

        let good = try Self.start(elegant + ["--user", "admin", "--password", "twin-secret-7"])
        let (status, progress, outcome) = try Self.push(file: file, to: good.address, extra: ["--dialect", "elegantota3"] + credentials)
        #expect(status == 0 && outcome["version"] == "2.0.0", "\(outcome) \(good.child.stdout.text)")
        #expect(progress == ["up: downloading", "up: installing"])
        #expect(good.count("start") == 1 && good.count("installed") == 1 && good.count("booted") == 1, "\(good.child.stdout.text)")
        // The MD5 the start announced is the one the device computed over what it received.
        let lines = good.child.stdout.lines
        let started = lines.first { $0.contains("\"event\":\"start\"") } ?? ""
        let installed = lines.first { $0.contains("\"event\":\"installed\"") } ?? ""
        let md5 = installed.range(of: "\"md5\":\"").map { String(installed[$0.upperBound...].prefix(32)) } ?? "?"
        #expect(md5.count == 32 && started.contains(md5), "\(started) \(installed)")
        good.stop()

        let cases: [(twin: [String], push: [String], kind: String, words: String)] = [
            (
                elegant + ["--fail", "update-error"], ["--dialect", "elegantota3"], "refused",
                "device refused to start the update (HTTP 400 from GET /ota/start): ERROR[4]: Not Enough Space"
            ),
            (
                elegant + ["--variant", "esp32s3"], ["--dialect", "elegantota3"], "refused",
                "device refused the image (HTTP 400 from POST /ota/upload): ERROR[11]"
            ),
            (elegant + ["--fail", "die-mid-transfer"], ["--dialect", "elegantota3"], "network", "connection lost during POST /ota/upload"),
            (elegant + ["--fail", "reboot-old"], ["--dialect", "elegantota3"], "rebooted-into-old", "1.0.0, not 2.0.0"),
            (
                elegant + ["--user", "admin", "--password", "twin-secret-7"], ["--dialect", "elegantota3"], "refused",
                "authentication failed (HTTP 401 from GET /ota/start)"
            ),
            (elegant, [], "refused", "POST /update answered 404: no upload form there (an ElegantOTA 3 device needs the option dialect=elegantota3)"),
            ([], ["--dialect", "elegantota3"], "refused", "GET /ota/start answered 404: the device runs no ElegantOTA 3"),
        ]
        for item in cases {
            let twin = try Self.start(item.twin)
            defer { twin.stop() }
            let (status, _, outcome) = try Self.push(file: file, to: twin.address, extra: item.push)
            #expect(status == 1 && outcome["kind"] == item.kind, "\(item.twin): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(item.twin): \(outcome)")
        }
    }

    @Test("the twin takes curl's upload as ESP8266HTTPUpdateServer's README shows it (curl -F image=@firmware.bin HOST/update) and boots the new version")
    func curlHostTool() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.files(dir, name: "firmware.bin", size: 200_000).image
        let twin = try Self.start(["--user", "admin", "--password", "twin-secret-7"])
        defer { twin.stop() }
        let curl = { (extra: [String]) throws -> (Int32, String, String) in
            try runProgram(
                "/usr/bin/curl", ["-sS", "--max-time", "30", "-w", "\n%{http_code}"] + extra + ["-F", "image=@\(file)", "http://\(twin.address)/update"])
        }
        let (_, anonymous, _) = try curl([])
        #expect(anonymous.hasSuffix("401") && twin.count("installed") == 0, "no credentials, no update: \(anonymous)")
        let (status, body, err) = try curl(["-u", "admin:twin-secret-7"])
        #expect(status == 0 && body.contains("Update Success! Rebooting...") && body.hasSuffix("200"), "\(body) \(err)")
        let version = { () -> String in (try? runProgram("/usr/bin/curl", ["-sS", "--max-time", "2", "http://\(twin.address)/version"]).1) ?? "" }
        #expect(waitUntil(timeout: 20) { twin.count("booted") == 1 && version().contains("2.0.0") }, "\(twin.child.stdout.text)")
        #expect(twin.count("installed") == 1)
    }

    @Test("a device behind an HTTP proxy is reached through it: upload and version checks pass the proxy; without it, network")
    func throughProxy() throws {
        let dir = try TemporaryDirectory()
        let file = try Self.files(dir, size: 100_000).image
        let proxy = try TinyProxy.start(in: dir)
        let twin = try Self.start([])
        defer { twin.stop() }
        let (status, _, outcome) = try Self.push(file: file, to: twin.address, extra: ["--proxy", proxy.url])
        #expect(status == 0 && outcome["version"] == "2.0.0", "\(outcome) \(proxy.child.stderr.text)")
        // The upload and at least one version check went through the proxy.
        #expect(proxy.connections(to: "127.0.0.1") >= 2, "\(proxy.child.stdout.text)\(proxy.child.stderr.text)")
        proxy.stop()
        let (downStatus, _, downOutcome) = try Self.push(file: file, to: twin.address, extra: ["--proxy", proxy.url])
        #expect(downStatus == 1 && downOutcome["kind"] == "network", "the proxy is gone, so is the device: \(downOutcome)")
    }

    @Test("nothing listening: network, after the retry timeout")
    func unreachable() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("x.bin")
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: file))
        let started = ContinuousClock.now
        let (status, _, outcome) = try Self.push(file: file, to: "127.0.0.1:1")
        #expect(status == 1 && outcome["kind"] == "network", "\(outcome)")
        #expect(ContinuousClock.now - started < .seconds(60), "bounded by the retry timeout plus one request")
    }
}
