import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fetch-url adapter (through `otamesh device push --family fetch-url`) against the
/// devicesim twin (`otamesh-devicesim serve --family fetch-url`), with the image served by a
/// real `otamesh agent`: success with the default JSON command, a form command on another path
/// with basic auth, and each fault's typed failure.
@Suite("fetch-url push", .serialized)
struct FetchURLPushIntegrationTests {
    static func start(_ extra: [String]) throws -> PushTwin {
        try PushTwin.start(family: "fetch-url", ["--version", "1.0.0", "--reboot-delay-ms", "100", "--reboot-ms", "800", "--duration", "300"] + extra)
    }

    static func push(url: String, to address: String, extra: [String] = []) throws -> (Int32, [String], [String: String]) {
        try PushTwin.push(
            family: "fetch-url", id: "fu", to: address,
            [
                "--url", url, "--version", "2.0.0", "--variant", "esp32",
                "--poll-ms", "100", "--deadline", "120", "--unreachable", "30",
                "--retry-timeout", "3", "--request-timeout", "5", "--reboot-grace", "5",
            ] + extra)
    }

    @Test("a push succeeds on the new version (JSON and form commands, basic auth); every fault gives its typed failure")
    func pushes() throws {
        let site = try ProjectMMPushIntegrationTests.Site()
        let dir = try TemporaryDirectory()
        let passwordFile = dir.file("password")
        try "fetch-secret-3\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)

        let good = try Self.start([])
        let (status, progress, outcome) = try Self.push(url: site.url, to: good.address)
        #expect(status == 0 && outcome["outcome"] == "succeeded" && outcome["version"] == "2.0.0", "\(outcome) \(good.child.stdout.text)")
        #expect(progress == ["fu: downloading", "fu: installing"])
        #expect(good.count("booted") == 1 && good.count("installed") == 1)
        good.stop()

        let form = try Self.start(["--method", "PUT", "--path", "/api/upgrade", "--user", "admin", "--password", "fetch-secret-3"])
        let (formStatus, _, formOutcome) = try Self.push(
            url: site.url, to: form.address,
            extra: [
                "--option", "method=PUT", "--option", "path=/api/upgrade", "--option", "content_type=application/x-www-form-urlencoded",
                "--option", "body=firmware={url}&v={version}", "--option", "accept=202",
                "--user", "admin", "--password-file", passwordFile,
            ])
        #expect(formStatus == 0 && formOutcome["version"] == "2.0.0", "\(formOutcome) \(form.child.stdout.text)")
        form.stop()

        let cases: [(twin: [String], push: [String], kind: String, words: String)] = [
            (["--fail", "refuse"], [], "refused", "HTTP 403 from POST /ota"),
            (["--user", "admin", "--password", "fetch-secret-3"], [], "refused", "authentication failed"),
            (["--fail", "die-mid-transfer"], [], "rebooted-into-old", "or its download of the image failed"),
            (["--fail", "reboot-old"], [], "rebooted-into-old", "reports 1.0.0, not 2.0.0"),
            (["--fail", "wrong-variant"], [], "rebooted-into-old", "as variant esp32s3-n16r8"),
            ([], ["--option", "path=/nowhere"], "refused", "HTTP 404 from POST /nowhere"),
        ]
        for item in cases {
            let twin = try Self.start(item.twin)
            defer { twin.stop() }
            let (status, out, outcome) = try Self.push(url: site.url, to: twin.address, extra: item.push)
            #expect(status == 1, "\(item.twin): \(outcome)")
            #expect(outcome["kind"] == item.kind, "\(item.twin): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(item.twin): \(outcome)")
            #expect(!out.joined().contains("fetch-secret-3"))
        }
    }

    @Test("a bad template is refused by the CLI before anything is sent, naming the option")
    func badTemplate() throws {
        let (status, _, err) = try run([
            "device", "push", "--family", "fetch-url", "--address", "127.0.0.1:1", "--url", "http://x/y",
            "--version", "2", "--option", "body={\"url\":\"{uri}\"}",
        ])
        #expect(status != 0)
        #expect(err.contains("unknown placeholder {uri}"), "\(err)")
    }
}
