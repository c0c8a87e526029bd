import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The projectMM adapter (through `otamesh device push`) against the devicesim twin
/// (`otamesh-devicesim serve --family projectmm`), with the image served by a real `otamesh
/// agent`: each twin failure mode gives its typed failure. Both sides are real processes, so
/// their timing does not depend on this test process's threads.
@Suite("projectMM push", .serialized)
struct ProjectMMPushIntegrationTests {
    /// An agent serving an ESP32 app image 2.0.0 at /v1/targets/projectmm/esp32/2.0.0.bin.
    final class Site {
        let dir: TemporaryDirectory
        let gateway: Gateway
        let url: String

        init() throws {
            dir = try TemporaryDirectory()
            let data = dir.file("data")
            let path = "projectmm/esp32/2.0.0.bin"
            let image = try PublishedRelease.Image.esp32(path, version: "2.0.0", size: 150000, file: dir.file("projectmm-2.0.0.bin"))
            _ = try PublishedRelease(in: dir, images: [image], importingInto: [data])
            gateway = try Gateway.start(data: data)
            url = "\(gateway.device)/v1/targets/\(path)"
        }

        deinit { gateway.stop() }
    }

    static func start(_ extra: [String]) throws -> PushTwin {
        try PushTwin.start(
            family: "projectmm",
            [
                "--version", "1.0.0", "--step-ms", "50", "--reboot-delay-ms", "600", "--reboot-ms", "800",
                "--rate", "400000", "--duration", "300",
            ] + extra)
    }

    /// `otamesh device push`: (exit status, progress lines, the outcome object).
    static func push(url: String, to address: String) throws -> (Int32, [String], [String: String]) {
        try PushTwin.push(
            family: "projectmm", id: "mm", to: address,
            [
                "--url", url, "--version", "2.0.0", "--variant", "esp32",
                "--poll-ms", "100", "--deadline", "120", "--unreachable", "30",
                "--retry-timeout", "3", "--request-timeout", "5",
            ])
    }

    @Test("a push succeeds on the new version; every failure mode of the twin gives its typed failure")
    func pushes() throws {
        let site = try Site()

        let good = try Self.start([])
        let (status, progress, outcome) = try Self.push(url: site.url, to: good.address)
        #expect(status == 0 && outcome["outcome"] == "succeeded" && outcome["version"] == "2.0.0", "\(outcome) \(good.child.stdout.text)")
        #expect(progress == ["mm: downloading", "mm: installing"])
        #expect(good.child.stdout.text.contains("\"booted\""))
        // Pushing again: the device already runs it, nothing is sent.
        #expect(try Self.push(url: site.url, to: good.address).2["version"] == "2.0.0")
        #expect(good.count("post") == 1)
        good.stop()

        let cases: [(twin: [String], kind: String, words: String, posts: Int)] = [
            (["--fail", "refuse-501"], "refused", "HTTP 501", 1),
            (["--fail", "refuse-400"], "refused", "HTTP 400", 1),
            (["--fail", "refuse-500"], "refused", "HTTP 500", 1),
            (["--fail", "die-mid-transfer"], "network", "came back running 1.0.0", 1),
            (["--fail", "reboot-old"], "rebooted-into-old", "reports 1.0.0, not 2.0.0", 1),
            (["--fail", "wrong-variant"], "rebooted-into-old", "as variant esp32s3-n16r8", 1),
            (["--variant", "esp32s3-n16r8"], "refused", "not compatible", 0),
        ]
        for item in cases {
            let twin = try Self.start(item.twin)
            defer { twin.stop() }
            let (status, _, outcome) = try Self.push(url: site.url, to: twin.address)
            #expect(status == 1, "\(item.twin): \(outcome)")
            #expect(outcome["kind"] == item.kind, "\(item.twin): \(outcome) \(twin.child.stdout.text)")
            #expect(outcome["reason"]?.contains(item.words) == true, "\(item.twin): \(outcome)")
            #expect(twin.count("post") == item.posts, "\(item.twin): \(twin.child.stdout.text)")
        }
    }

    @Test("nothing listening: network, after the retry timeout")
    func unreachable() throws {
        let started = ContinuousClock.now
        let (status, _, outcome) = try Self.push(url: "http://127.0.0.1:1/p", to: "127.0.0.1:1")
        #expect(status == 1 && outcome["kind"] == "network", "\(outcome)")
        #expect(ContinuousClock.now - started < .seconds(60), "bounded by the retry timeout plus one request")
    }
}
