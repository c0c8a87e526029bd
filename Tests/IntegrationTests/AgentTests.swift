import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Starts a real `otamesh agent` process and talks to it over HTTP on loopback.
@Suite("agent", .serialized)
struct AgentTests {
    /// Starts an agent on free loopback ports and returns it with its admin URL.
    static func start(data: String, extra: [String] = []) throws -> (Child, String) {
        let gateway = try Gateway.start(data: data, extra: extra)
        return (gateway.child, gateway.admin)
    }

    struct AgentFailure: Error { let message: String }

    static func get(_ url: String) async throws -> (Int, String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    @Test("serves /metrics with cache size, blob count, adds and verification failures; stops on SIGTERM")
    func metrics() async throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let file = dir.file("fw.bin")
        try Data(patterned(123_456, seed: 7)).write(to: URL(fileURLWithPath: file))
        #expect(try run(["cache", "add", "--data-dir", data, file]).0 == 0)

        let (agent, url) = try Self.start(data: data)
        #expect(agent.stdout.text.contains("data dir: \(data)  (1 blobs, 123456 bytes)"))
        let (status, body) = try await Self.get("\(url)/metrics")
        #expect(status == 200)
        #expect(body.contains("otamesh_cache_blobs 1"))
        #expect(body.contains("otamesh_cache_bytes 123456"))
        #expect(body.contains("otamesh_cache_adds_total 0"))
        #expect(body.contains("otamesh_cache_verification_failures_total 0"))
        let (healthStatus, health) = try await Self.get("\(url)/healthz")
        #expect(healthStatus == 200 && health.contains("\"status\":\"ok\""))
        let (_, cache) = try await Self.get("\(url)/api/v1/cache")
        #expect(cache.contains(sha256Hex(try Data(contentsOf: URL(fileURLWithPath: file)))))

        // While the agent runs, the data directory is locked against other writers.
        let (addStatus, _, addErr) = try run(["cache", "add", "--data-dir", data, file])
        #expect(addStatus == 1)
        #expect(addErr == "otamesh cache: data directory \(data) is locked by process \(agent.pid)\n")
        // Readers still work.
        #expect(try run(["cache", "ls", "--data-dir", data]).1.contains("1 blobs, 123456 bytes"))

        agent.signal(SIGTERM)
        #expect(agent.wait(timeout: 30) == 0)
    }

    @Test("JSON logs: one object per line")
    func jsonLogs() throws {
        let dir = try TemporaryDirectory()
        let (agent, _) = try Self.start(data: dir.file("data"), extra: ["--log-format", "json", "--log-level", "debug"])
        agent.signal(SIGTERM)
        agent.wait(timeout: 30)
        let lines = agent.stderr.lines
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["msg"] != nil && object?["ts"] != nil, "\(line)")
        }
    }
}
