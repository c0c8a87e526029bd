import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh release` → publish → served over HTTP on loopback → a running agent syncs it:
/// verified targets land in the store, new releases follow, and `otamesh images` lists them.
@Suite("upstream sync", .serialized)
struct UpstreamSyncTests {
    static let fixtures = BundleTests.fixtures

    @Test("the agent fetches verified targets into its store and follows new releases")
    func sync() async throws {
        let dir = try TemporaryDirectory()
        let repo = dir.file("repo")
        let site = dir.file("site")
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "esp32/projectMM/2.1.0.bin", "\(Self.fixtures)/esp/esp32s3.bin"]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "w800/app_ota.img", "\(Self.fixtures)/wm/w800_app_ota.img"]).0 == 0)
        #expect(try run(["release", "publish", "--repo", repo, site]).0 == 0)
        let server = try TUFCLITests.StaticServer(directory: site)
        let data = dir.file("gateway")
        let (agent, url) = try AgentTests.start(
            data: data,
            extra: [
                "--trust-root", "\(site)/metadata/1.root.json", "--upstream-metadata-url", "\(server.url)/metadata",
                "--upstream-targets-url", "\(server.url)/targets", "--upstream-targets", "esp32/*/*,w800/*", "--upstream-interval", "1s",
            ])
        defer {
            agent.signal(SIGTERM)
            agent.wait(timeout: 30)
        }
        #expect(agent.stdout.text.contains("upstream sync: \(server.url)/metadata"))
        func images() throws -> String { try run(["images", "--data-dir", data]).1 }
        #expect(waitUntil(timeout: 30) { ((try? images()) ?? "").components(separatedBy: "cached\n").count - 1 == 2 }, "\(agent.stderr.text)")
        let listed = try images()
        #expect(listed.contains("esp32/projectMM/2.1.0.bin  2.1.0-dev.7  esp32s3  esp32-app  752 bytes  cached"))

        // A new release appears upstream; the agent follows within a few polls.
        #expect(try run(["release", "add", "--repo", repo, "--path", "esp32/projectMM/2.2.0.bin", "\(Self.fixtures)/esp/esp32c6.bin"]).0 == 0)
        #expect(try run(["release", "publish", "--repo", repo, site]).0 == 0)
        // Listed once its metadata is trusted; in the cache (and counted) once its bytes arrived.
        #expect(
            waitUntil(timeout: 60) {
                ((try? images()) ?? "").split(separator: "\n").contains {
                    $0.hasPrefix("esp32/projectMM/2.2.0.bin  3.0.0-rc.1+build.42  esp32c6  esp32-app") && $0.hasSuffix(" cached")
                }
            }, "\((try? images()) ?? "")")
        var metrics = ""
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            metrics = try await AgentTests.get("\(url)/metrics").1
            if metrics.contains("otamesh_cache_blobs 3") { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(metrics.contains("otamesh_cache_blobs 3"))
        #expect(metrics.contains("otamesh_upstream_syncs_total"))
        #expect(!metrics.contains("otamesh_upstream_failures_total 1"))
    }

    @Test("one target that fails (gone from the server) does not keep the later targets from arriving; it is logged and counted")
    func failingTargetIsItsOwn() async throws {
        let dir = try TemporaryDirectory()
        let repo = dir.file("repo")
        let site = dir.file("site")
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "a-first/broken.bin", "\(Self.fixtures)/esp/esp32c6.bin"]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "w800/app_ota.img", "\(Self.fixtures)/wm/w800_app_ota.img"]).0 == 0)
        #expect(try run(["release", "publish", "--repo", repo, site]).0 == 0)
        // The first target (in sync order) is gone from the target server: a 404, not retryable.
        try FileManager.default.removeItem(atPath: "\(site)/targets/a-first")
        let server = try TUFCLITests.StaticServer(directory: site)
        let data = dir.file("gateway")
        let (agent, url) = try AgentTests.start(
            data: data,
            extra: [
                "--trust-root", "\(site)/metadata/1.root.json", "--upstream-metadata-url", "\(server.url)/metadata",
                "--upstream-targets-url", "\(server.url)/targets", "--upstream-interval", "1s",
            ])
        defer {
            agent.signal(SIGTERM)
            agent.wait(timeout: 30)
        }
        func images() throws -> String { try run(["images", "--data-dir", data]).1 }
        #expect(
            waitUntil(timeout: 30) {
                ((try? images()) ?? "").split(separator: "\n").contains { $0.hasPrefix("w800/app_ota.img ") && $0.hasSuffix("bytes  cached") }
            },
            "the later target arrives: \((try? images()) ?? "") \(agent.stderr.text.suffix(1500))")
        #expect(
            waitUntil(timeout: 10) { agent.stderr.text.contains("upstream target failed") && agent.stderr.text.contains("a-first/broken.bin") },
            "\(agent.stderr.text.suffix(1500))")
        let (_, metrics) = try await AgentTests.get("\(url)/metrics")
        #expect(metrics.contains("otamesh_upstream_failures_total"), "counted")
    }

    @Test("upstream without a trusted root refuses to start, saying what is missing")
    func noRoot() throws {
        let dir = try TemporaryDirectory()
        let child = try Child(
            Binaries.otamesh,
            [
                "agent", "--data-dir", dir.file("data"), "--admin-listen", "127.0.0.1:0",
                "--upstream-metadata-url", "http://127.0.0.1:9/metadata",
            ])
        #expect(child.wait(timeout: 30) == 1)
        #expect(child.stderr.text.contains("a trusted root: set trust.root (--trust-root FILE)"))
    }
}
