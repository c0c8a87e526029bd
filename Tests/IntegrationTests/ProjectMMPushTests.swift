import Foundation
import OTAMeshDevices
import OTAMeshRollout
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The projectMM adapter against the devicesim twin (`otamesh-devicesim serve --family
/// projectmm`), with the image served by a real `otamesh agent`: each twin failure mode gives
/// its typed failure.
@Suite("projectMM push", .serialized)
struct ProjectMMPushIntegrationTests {
    /// An agent serving an ESP32 app image 2.0.0 at /v1/targets/projectmm/esp32/2.0.0.bin.
    final class Site: @unchecked Sendable {
        let dir: TemporaryDirectory
        let gateway: Gateway
        let image: PushImage

        init() throws {
            dir = try TemporaryDirectory()
            let data = dir.file("data")
            let repo = dir.file("repo")
            let file = dir.file("projectmm-2.0.0.bin")
            let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", "2.0.0", "--size", "150000", "-o", file])
            #expect(made.0 == 0, "\(made.2)")
            let path = "projectmm/esp32/2.0.0.bin"
            for args in [
                ["release", "init", "--repo", repo],
                ["release", "add", "--repo", repo, "--path", path, file],
                ["release", "publish", "--repo", repo, dir.file("pub")],
                ["export", "--published", dir.file("pub"), dir.file("b.tar")],
                ["import", "--data-dir", data, "--root", dir.file("pub/metadata/1.root.json"), dir.file("b.tar")],
            ] {
                let (status, out, err) = try run(args)
                #expect(status == 0, "\(args): \(out) \(err)")
            }
            gateway = try Gateway.start(data: data)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            image = PushImage(path: path, sha256: sha256Hex(bytes), length: Int64(bytes.count), version: "2.0.0", file: file,
                              url: "\(gateway.device)/v1/targets/\(path)", variant: "esp32")
        }

        deinit { gateway.stop() }
    }

    /// A running twin and where it listens.
    struct Twin {
        let child: Child
        let target: PushTarget

        static func start(_ extra: [String]) throws -> Twin {
            let child = try Child(Binaries.devicesim, ["serve", "--family", "projectmm", "--listen-base", "127.0.0.1:0", "--version", "1.0.0",
                                                       "--step-ms", "50", "--reboot-delay-ms", "600", "--reboot-ms", "800",
                                                       "--rate", "400000", "--duration", "60"] + extra)
            let ready = waitUntil(timeout: 20) { child.stdout.text.contains("\"listening\"") || !child.process.isRunning }
            guard ready, let line = child.stdout.lines.first(where: { $0.contains("\"listening\"") }),
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let address = object["address"] as? String
            else {
                child.signal(SIGKILL)
                child.wait()
                throw Gateway.StartFailure(message: "twin did not start: \(child.stdout.text) \(child.stderr.text)")
            }
            let (host, port) = PushTarget.hostAndPort(address, defaultPort: 80)
            return Twin(child: child, target: PushTarget(id: "projectmm-0", family: "projectmm", host: host, port: port, variant: "esp32"))
        }

        func stop() {
            child.signal(SIGTERM)
            child.wait(timeout: 10)
        }

        var posts: Int { child.stdout.lines.filter { $0.contains("\"event\":\"post\"") }.count }
    }

    static var adapter: ProjectMMAdapter {
        var timing = ProjectMMPush.Timing()
        timing.pollInterval = 100
        // Generous: the suite shares two cores with the whole test run.
        timing.deadline = 120_000
        timing.unreachableLimit = 30_000
        timing.retry.retryTimeout = 3
        return ProjectMMAdapter(timing: timing, requestTimeout: .seconds(5))
    }

    /// Pushes and returns the version or the failure, and the progress phases reported.
    static func push(_ image: PushImage, to target: PushTarget) async -> (Result<String, PushFailure>, [DeviceOutcome.Phase]) {
        let phases = PhaseLog()
        do throws(PushFailure) {
            let version = try await adapter.push(image, to: target) { phases.append($0) }
            return (.success(version), phases.all)
        } catch {
            return (.failure(error), phases.all)
        }
    }

    final class PhaseLog: @unchecked Sendable {
        private let lock = NSLock()
        private var phases: [DeviceOutcome.Phase] = []
        func append(_ phase: DeviceOutcome.Phase) { lock.withLock { phases.append(phase) } }
        var all: [DeviceOutcome.Phase] { lock.withLock { phases } }
    }

    @Test("a push succeeds on the new version; every failure mode of the twin gives its typed failure")
    func pushes() async throws {
        let site = try Site()

        let good = try Twin.start([])
        let (result, phases) = await Self.push(site.image, to: good.target)
        #expect((try? result.get()) == "2.0.0", "\(result) \(good.child.stdout.text) \(good.child.stderr.text.suffix(2000))")
        #expect(phases == [.downloading, .installing])
        #expect(good.child.stdout.text.contains("\"booted\""))
        // Pushing again: the device already runs it.
        #expect(try await Self.push(site.image, to: good.target).0.get() == "2.0.0")
        #expect(good.posts == 1)
        good.stop()

        let cases: [(fail: [String], kind: PushFailure.Kind, words: String, posts: Int)] = [
            (["--fail", "refuse-501"], .refused, "HTTP 501", 1),
            (["--fail", "refuse-400"], .refused, "HTTP 400", 1),
            (["--fail", "refuse-500"], .refused, "HTTP 500", 1),
            (["--fail", "die-mid-transfer"], .network, "came back running 1.0.0", 1),
            (["--fail", "reboot-old"], .rebootedIntoOld, "reports 1.0.0, not 2.0.0", 1),
            (["--fail", "wrong-variant"], .rebootedIntoOld, "as variant esp32s3-n16r8", 1),
            (["--variant", "esp32s3-n16r8"], .refused, "not compatible", 0),
        ]
        for item in cases {
            let twin = try Twin.start(item.fail)
            defer { twin.stop() }
            let (result, _) = await Self.push(site.image, to: twin.target)
            guard case .failure(let failure) = result else {
                Issue.record("\(item.fail): expected a \(item.kind) failure, got \(result)")
                continue
            }
            #expect(failure.kind == item.kind, "\(item.fail): \(failure) \(twin.child.stdout.text)")
            #expect(failure.reason.contains(item.words), "\(item.fail): \(failure)")
            #expect(twin.posts == item.posts, "\(item.fail): \(twin.child.stdout.text)")
        }
    }

    @Test("nothing listening: network, after the retry timeout")
    func unreachable() async {
        let image = PushImage(path: "p", sha256: "00", length: 1, version: "2.0.0", file: "/dev/null", url: "http://127.0.0.1:1/p", variant: "esp32")
        let started = ContinuousClock.now
        let (result, _) = await Self.push(image, to: PushTarget(id: "gone", family: "projectmm", host: "127.0.0.1", port: 1))
        guard case .failure(let failure) = result else { Issue.record("expected a failure"); return }
        #expect(failure.kind == .network, "\(failure)")
        #expect(ContinuousClock.now - started < .seconds(60), "bounded by the retry timeout plus one request")
    }
}
