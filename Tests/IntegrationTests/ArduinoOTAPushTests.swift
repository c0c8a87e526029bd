import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ArduinoOTA adapter (through `otamesh device push --family arduino-ota`) against the
/// devicesim twin (`otamesh-devicesim serve --family arduino-ota`), both dialects: success with
/// and without a password, each fault's typed failure, the password never printed; and the
/// twin against the real host tool `python3 -m espota` (PyPI espota 0.5.0, ESPHome's native
/// OTA protocol), which `make deps` installs.
@Suite("ArduinoOTA push", .serialized)
struct ArduinoOTAPushIntegrationTests {
    static let secret = "ota-twin-secret-9"

    static func start(_ extra: [String]) throws -> PushTwin {
        try PushTwin.start(family: "arduino-ota", ["--version", "1.0.0", "--reboot-delay-ms", "100", "--reboot-ms", "800", "--duration", "300"] + extra)
    }

    /// The ESP32 app image of version 2.0.0 every push sends, and a file holding the password.
    static func files(_ dir: TemporaryDirectory) throws -> (image: String, password: String) {
        let image = dir.file("lamp-2.0.0.bin")
        let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", "2.0.0", "--size", "300000", "-o", image])
        #expect(made.0 == 0, "\(made.2)")
        let password = dir.file("ota-password")
        try "\(secret)\n".write(toFile: password, atomically: true, encoding: .utf8)
        return (image, password)
    }

    /// `otamesh device push --family arduino-ota`: (exit status, progress lines, the outcome
    /// object, everything it printed).
    static func push(_ file: String, to twin: PushTwin, dialect: String, extra: [String] = []) throws -> (Int32, [String], [String: String], String) {
        try push(file, to: twin.address, http: twin.http, dialect: dialect, extra: extra)
    }

    static func push(_ file: String, to address: String, http: String?, dialect: String, extra: [String]) throws -> (Int32, [String], [String: String], String)
    {
        let httpPort = http.flatMap { $0.split(separator: ":").last.map(String.init) } ?? "80"
        let arguments =
            [
                "device", "push", "--family", "arduino-ota", "--address", address, "--id", "ota", "--dialect", dialect,
                "--file", file, "--version", "2.0.0", "--variant", "esp32", "--version-port", httpPort,
                "--poll-ms", "100", "--deadline", "120", "--unreachable", "30", "--retry-timeout", "3",
                // 6 s per OTA answer: a twin connecting back on a loaded 2-core machine took over 3 s once.
                "--request-timeout", "6", "--reboot-grace", "5", "--result-timeout", "10",
            ] + extra
        let (status, out, err) = try run(arguments, timeout: 180)
        let lines = out.split(separator: "\n").map(String.init)
        let outcome = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] } ?? ["stderr": err]
        return (status, lines.filter { $0.hasPrefix("ota: ") }, outcome, out + err)
    }

    /// The version the twin's HTTP side reports now.
    static func version(of twin: PushTwin) throws -> String {
        let (_, body, _) = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "5", "http://\(twin.http ?? "")/version"])
        let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String]
        return object?["version"] ?? body
    }

    @Test("both dialects: a push succeeds on the new version, with and without a password")
    func succeeds() throws {
        let dir = try TemporaryDirectory()
        let (image, passwordFile) = try Self.files(dir)
        for dialect in ["arduino", "esphome"] {
            let open = try Self.start([])
            defer { open.stop() }
            let (status, progress, outcome, _) = try Self.push(image, to: open, dialect: dialect)
            #expect(status == 0 && outcome["outcome"] == "succeeded" && outcome["version"] == "2.0.0", "\(dialect): \(outcome) \(open.child.stdout.text)")
            #expect(progress == ["ota: downloading", "ota: installing"], "\(dialect)")
            #expect(open.count("installed") == 1 && open.count("booted") == 1, "\(dialect): \(open.child.stdout.text)")
            #expect(try Self.version(of: open) == "2.0.0")

            let locked = try Self.start(["--password", Self.secret])
            defer { locked.stop() }
            let (lockedStatus, _, lockedOutcome, printed) = try Self.push(image, to: locked, dialect: dialect, extra: ["--password-file", passwordFile])
            #expect(lockedStatus == 0 && lockedOutcome["version"] == "2.0.0", "\(dialect): \(lockedOutcome) \(locked.child.stdout.text)")
            #expect(!printed.contains(Self.secret))
        }
    }

    @Test("every fault gives its typed failure, a wrong password is refused, and the password is never printed")
    func failures() throws {
        let dir = try TemporaryDirectory()
        let (image, passwordFile) = try Self.files(dir)
        let wrongPassword = dir.file("wrong-password")
        try "not-the-password\n".write(toFile: wrongPassword, atomically: true, encoding: .utf8)
        let cases: [(dialect: String, twin: [String], push: [String], kind: String, words: String)] = [
            ("arduino", ["--fail", "refuse"], [], "refused", "did not connect back"),
            ("arduino", ["--fail", "refuse", "--variant", "esp8266"], [], "refused", "(Update.begin): ERROR[4]: Not Enough Space"),
            ("esphome", ["--fail", "refuse"], [], "refused", "the OTA partition is too small"),
            ("arduino", ["--fail", "die-mid-transfer"], [], "network", "connection lost"),
            ("esphome", ["--fail", "die-mid-transfer"], [], "network", "connection lost"),
            ("arduino", ["--fail", "reboot-old"], [], "rebooted-into-old", "1.0.0, not 2.0.0"),
            ("esphome", ["--fail", "reboot-old"], [], "rebooted-into-old", "1.0.0, not 2.0.0"),
            ("arduino", ["--fail", "wrong-variant"], [], "rebooted-into-old", "as variant esp32s3-n16r8"),
            ("esphome", ["--fail", "wrong-variant"], [], "rebooted-into-old", "as variant esp32s3-n16r8"),
            ("arduino", ["--variant", "esp32s3"], [], "refused", "device refused the image: Could Not Activate The Firmware"),
            ("esphome", ["--variant", "esp32s3"], [], "refused", "finishing the update failed"),
            ("arduino", [], ["--device-variant", "esp8266"], "refused", "not compatible with the image, built for esp32"),
            ("esphome", [], ["--device-variant", "esp32c3"], "refused", "not compatible with the image, built for esp32"),
            ("arduino", ["--password", Self.secret], ["--password-file", wrongPassword], "refused", "authentication failed: the device rejected"),
            ("esphome", ["--password", Self.secret], ["--password-file", wrongPassword], "refused", "authentication invalid"),
            ("arduino", ["--password", Self.secret], [], "refused", "none is configured"),
            ("esphome", ["--password", Self.secret], [], "refused", "none is configured"),
        ]
        for item in cases {
            let twin = try Self.start(item.twin)
            defer { twin.stop() }
            let label = "\(item.dialect) \(item.twin) \(item.push)"
            let (status, _, outcome, printed) = try Self.push(image, to: twin, dialect: item.dialect, extra: item.push)
            #expect(status == 1, "\(label): \(outcome)")
            #expect(outcome["kind"] == item.kind, "\(label): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(label): \(outcome)")
            #expect(!printed.contains(Self.secret), "\(label): the password was printed")
            if item.push.contains("--device-variant") {
                #expect(twin.count("invitation") == 0 && twin.count("accepted") == 0, "\(label): nothing may reach the device")
            }
            if item.kind == "refused" {
                #expect(try Self.version(of: twin) == "1.0.0", "\(label): the device stays on its version")
            }
        }
    }

    @Test("the option ota_port sends the push to the device's OTA port, whatever port its address names (ESPHome announces its API port)")
    func otaPortOption() throws {
        let dir = try TemporaryDirectory()
        let (image, _) = try Self.files(dir)
        let twin = try Self.start([])
        defer { twin.stop() }
        let otaPort = String(twin.address.split(separator: ":").last ?? "")
        let (status, _, outcome, _) = try Self.push(
            image, to: "127.0.0.1:6053", http: twin.http, dialect: "esphome", extra: ["--option", "ota_port=\(otaPort)"])
        #expect(status == 0 && outcome["version"] == "2.0.0", "\(outcome) \(twin.child.stdout.text)")
        let (badStatus, _, bad, _) = try Self.push(image, to: twin.address, http: twin.http, dialect: "esphome", extra: ["--option", "ota_port=70000"])
        #expect(badStatus == 1 && bad["kind"] == "refused" && bad["reason"] == "option ota_port '70000' is not a port", "\(bad)")
    }

    @Test("nothing answering: network, after the retry timeout, in both dialects")
    func unreachable() throws {
        let dir = try TemporaryDirectory()
        let (image, _) = try Self.files(dir)
        for dialect in ["arduino", "esphome"] {
            let started = ContinuousClock.now
            let (status, _, outcome, _) = try Self.push(image, to: "127.0.0.1:9", http: "127.0.0.1:9", dialect: dialect, extra: ["--request-timeout", "1"])
            #expect(status == 1 && outcome["kind"] == "network", "\(dialect): \(outcome)")
            #expect(ContinuousClock.now - started < .seconds(30), "bounded by the retry timeout plus one answer")
        }
    }

    @Test("the real host tool: python3 -m espota updates the twin; a wrong password leaves it on its version")
    func espotaHostTool() throws {
        let probe = try runProgram("/usr/bin/env", ["python3", "-c", "import espota, esphome.core, esphome.helpers"])
        try #require(
            probe.0 == 0,
            """
            python3 cannot import espota (PyPI espota==0.5.0 with esphome==2026.6.5, installed with --no-deps by `make deps`): \(probe.2)
            """)
        let dir = try TemporaryDirectory()
        let (image, _) = try Self.files(dir)

        let twin = try Self.start(["--password", Self.secret])
        defer { twin.stop() }
        let port = String(twin.address.split(separator: ":").last ?? "")
        // espota's exit status is always 0 (its __main__ drops run_ota's result): judge by the device.
        let good = try runProgram("/usr/bin/env", ["python3", "-m", "espota", "127.0.0.1", port, Self.secret, image], timeout: 60)
        #expect(!good.2.contains("Error"), "espota: \(good.1) \(good.2)")
        #expect(twin.count("installed") == 1, "\(twin.child.stdout.text) espota: \(good.2)")
        #expect(waitUntil(timeout: 20) { twin.count("booted") == 1 }, "\(twin.child.stdout.text)")
        #expect(waitUntil(timeout: 10) { (try? Self.version(of: twin)) == "2.0.0" })

        let other = try Self.start(["--password", Self.secret])
        defer { other.stop() }
        let otherPort = String(other.address.split(separator: ":").last ?? "")
        let bad = try runProgram("/usr/bin/env", ["python3", "-m", "espota", "127.0.0.1", otherPort, "wrong-password", image], timeout: 60)
        #expect(bad.2.contains("Authentication invalid"), "espota: \(bad.1) \(bad.2)")
        #expect(other.count("auth-failed") == 1 && other.count("installed") == 0, "\(other.child.stdout.text)")
        #expect(try Self.version(of: other) == "1.0.0")
    }
}
