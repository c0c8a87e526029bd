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
    /// A running twin and where it listens.
    struct Twin {
        let child: Child
        let address: String

        static func start(_ extra: [String]) throws -> Twin {
            let child = try Child(Binaries.devicesim, ["serve", "--family", "http-upload", "--listen-base", "127.0.0.1:0", "--version", "1.0.0",
                                                       "--reboot-delay-ms", "100", "--reboot-ms", "800", "--duration", "300"] + extra)
            let ready = waitUntil(timeout: 30) { child.stdout.text.contains("\"listening\"") || !child.process.isRunning }
            guard ready, let line = child.stdout.lines.first(where: { $0.contains("\"listening\"") }),
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let address = object["address"] as? String
            else {
                child.signal(SIGKILL)
                child.wait()
                throw Gateway.StartFailure(message: "twin did not start: \(child.stdout.text) \(child.stderr.text)")
            }
            return Twin(child: child, address: address)
        }

        func stop() {
            child.signal(SIGTERM)
            child.wait(timeout: 10)
        }

        func count(_ event: String) -> Int { child.stdout.lines.filter { $0.contains("\"event\":\"\(event)\"") }.count }
    }

    /// `otamesh device push --family http-upload`: (exit status, progress lines, the outcome object).
    static func push(file: String, to address: String, extra: [String] = []) throws -> (Int32, [String], [String: String]) {
        let (status, out, err) = try run(["device", "push", "--family", "http-upload", "--address", address, "--id", "up",
                                          "--file", file, "--version", "2.0.0",
                                          "--poll-ms", "100", "--deadline", "120", "--unreachable", "30",
                                          "--retry-timeout", "3", "--request-timeout", "5", "--reboot-grace", "5"] + extra, timeout: 180)
        let lines = out.split(separator: "\n").map(String.init)
        let outcome = lines.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] } ?? ["stderr": err]
        return (status, lines.filter { $0.hasPrefix("up: ") }, outcome)
    }

    @Test("a push succeeds on the new version, with basic auth too; every fault gives its typed failure")
    func pushes() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("lamp-2.0.0.bin")
        let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", "2.0.0", "--size", "300000", "-o", file])
        #expect(made.0 == 0, "\(made.2)")
        let passwordFile = dir.file("password")
        try "twin-secret-7\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)

        let good = try Twin.start([])
        let (status, progress, outcome) = try Self.push(file: file, to: good.address)
        #expect(status == 0 && outcome["outcome"] == "succeeded" && outcome["version"] == "2.0.0", "\(outcome) \(good.child.stdout.text)")
        #expect(progress == ["up: downloading", "up: installing"])
        #expect(good.count("booted") == 1 && good.count("installed") == 1)
        good.stop()

        let locked = try Twin.start(["--user", "admin", "--password", "twin-secret-7"])
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
            let twin = try Twin.start(item.twin)
            defer { twin.stop() }
            let (status, out, outcome) = try Self.push(file: file, to: twin.address, extra: item.push)
            #expect(status == 1, "\(item.twin): \(outcome)")
            #expect(outcome["kind"] == item.kind, "\(item.twin): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(item.twin): \(outcome)")
            #expect(!out.joined().contains("twin-secret-7") && !(outcome["reason"] ?? "").contains("twin-secret-7"))
        }
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
