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

    /// One request with an optional `Authorization` header: (status, body, WWW-Authenticate).
    static func request(_ method: String, _ url: String, authorization: String?, body: Data? = nil) async throws -> (Int, String, String?) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, String(decoding: data, as: UTF8.self), http?.value(forHTTPHeaderField: "WWW-Authenticate"))
    }

    @Test("serves /metrics with cache size, blob count, adds and verification failures; cache changes go through the running agent; stops on SIGTERM")
    func metrics() async throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let file = dir.file("fw.bin")
        try Data(patterned(123_456, seed: 7)).write(to: URL(fileURLWithPath: file))
        #expect(try run(["cache", "add", "--data-dir", data, file]).0 == 0)

        let gateway = try Gateway.start(data: data)
        let (agent, url) = (gateway.child, gateway.admin)
        #expect(agent.stdout.text.contains("data dir: \(data)  (1 blobs, 123456 bytes)"))
        let (status, body) = try await Self.get("\(url)/metrics")
        #expect(status == 200)
        #expect(body.contains("otamesh_cache_blobs 1"))
        #expect(body.contains("otamesh_cache_bytes 123456"))
        #expect(body.contains("otamesh_cache_adds_total 0"))
        #expect(body.contains("otamesh_cache_verification_failures_total 0"))
        let (healthStatus, health) = try await Self.get("\(url)/healthz")
        #expect(healthStatus == 200 && health.contains("\"status\":\"ok\""))
        let (_, cache, _) = try await Self.request("GET", "\(url)/api/v1/cache", authorization: "Bearer \(gateway.readToken)")
        #expect(cache.contains(sha256Hex(try Data(contentsOf: URL(fileURLWithPath: file)))))

        // While the agent runs, cache changes go through it (it holds the data directory's lock).
        let second = dir.file("fw2.bin")
        let secondBytes = Data(patterned(50_000, seed: 8))
        try secondBytes.write(to: URL(fileURLWithPath: second))
        let secondHash = sha256Hex(secondBytes)
        let (addStatus, addOut, addErr) = try run(["cache", "add", "--data-dir", data, "--sha256", secondHash, "--pin", "keep", second])
        #expect(addStatus == 0, "\(addErr)")
        #expect(addOut == "sha256:\(secondHash)  50000 bytes\n(through the running agent at \(url))\n")
        let (_, afterAdd) = try await Self.get("\(url)/metrics")
        #expect(afterAdd.contains("otamesh_cache_blobs 2") && afterAdd.contains("otamesh_cache_adds_total 1"))
        // Content that does not match its --sha256 changes nothing.
        let (badStatus, _, badErr) = try run(["cache", "add", "--data-dir", data, "--sha256", String(repeating: "ab", count: 32), file])
        #expect(badStatus == 1 && badErr.contains("HTTP 400: content sha256 mismatch"), "\(badErr)")
        // A pinned blob is not removed; unpinned, it is.
        let (pinnedStatus, _, pinnedErr) = try run(["cache", "rm", "--data-dir", data, secondHash])
        #expect(pinnedStatus == 1 && pinnedErr == "sha256:\(secondHash) is pinned; unpin it first\n")
        #expect(try run(["cache", "unpin", "--data-dir", data, secondHash]).0 == 0)
        let (removed, removedOut, _) = try run(["cache", "rm", "--data-dir", data, secondHash])
        #expect(removed == 0 && removedOut == "(through the running agent at \(url))\n")
        let (verified, verifyOut, _) = try run(["cache", "verify", "--data-dir", data])
        #expect(verified == 0 && verifyOut.hasPrefix("verified 1 blobs (123456 bytes): 0 corrupt, 0 missing\n"))
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

extension AgentTests {
    @Test(
        "admin API tokens: created 0600 on first start and announced before 'data dir:'; /api/v1 answers 401 without a known token, 403 to a read-only write, 200 otherwise; /metrics and /healthz stay open"
    )
    func bearerTokens() async throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }
        let lines = gateway.child.stdout.lines
        let announced = try #require(lines.firstIndex { $0.hasPrefix("  new admin API tokens: ") }, "\(lines)")
        #expect(lines[announced].contains("\(data)/keys/admin.token (admin)") && lines[announced].contains("\(data)/keys/read.token (read-only)"))
        #expect(lines.last?.hasPrefix("  data dir: ") == true && announced < lines.count - 1)
        let admin = gateway.token
        let read = gateway.readToken
        for (path, token) in [(gateway.tokenFile, admin), (gateway.readTokenFile, read)] {
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600, "\(path)")
            #expect(token.count == 43 && token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, "32 bytes, base64url: \(token.count)")
        }
        #expect(admin != read)
        let url = gateway.admin

        // Open endpoints.
        #expect(try await Self.request("GET", "\(url)/healthz", authorization: nil).0 == 200)
        #expect(try await Self.request("HEAD", "\(url)/healthz", authorization: nil).0 == 200)
        #expect(try await Self.request("HEAD", "\(url)/no-such-route", authorization: nil).0 == 404)
        #expect(try await Self.request("GET", "\(url)/metrics", authorization: nil).0 == 200)

        // Reads: either token; nothing else.
        for path in ["cache", "members", "records"] {
            let (missing, body, challenge) = try await Self.request("GET", "\(url)/api/v1/\(path)", authorization: nil)
            #expect(missing == 401 && challenge == "Bearer" && body.contains("missing bearer token"), "\(path): \(missing) \(body)")
            let (unknown, unknownBody, unknownChallenge) = try await Self.request("GET", "\(url)/api/v1/\(path)", authorization: "Bearer not-\(admin)")
            #expect(unknown == 401 && unknownChallenge == "Bearer" && unknownBody.contains("unknown bearer token"), "\(path): \(unknown)")
            #expect(try await Self.request("GET", "\(url)/api/v1/\(path)", authorization: "Basic \(admin)").0 == 401)
            #expect(try await Self.request("GET", "\(url)/api/v1/\(path)", authorization: "Bearer \(read)").0 == 200, "\(path)")
            // HEAD on a read route: the GET's status with the read token, no body (404 before).
            let (headStatus, headBody, _) = try await Self.request("HEAD", "\(url)/api/v1/\(path)", authorization: "Bearer \(read)")
            #expect(headStatus == 200 && headBody.isEmpty, "HEAD \(path): \(headStatus)")
            #expect(try await Self.request("HEAD", "\(url)/api/v1/\(path)", authorization: nil).0 == 401)
            #expect(try await Self.request("GET", "\(url)/api/v1/\(path)", authorization: "bearer \(admin)").0 == 200, "\(path)")
        }
        // Writes: the admin token only.
        let record = "\(url)/api/v1/records/auth-test"
        #expect(try await Self.request("POST", record, authorization: nil, body: Data("x".utf8)).0 == 401)
        let (forbidden, reason, _) = try await Self.request("POST", record, authorization: "Bearer \(read)", body: Data("x".utf8))
        #expect(forbidden == 403 && reason.contains("read-only token") && reason.contains("needs the admin token"), "\(forbidden) \(reason)")
        #expect(try await Self.request("POST", record, authorization: "Bearer \(admin)", body: Data("x".utf8)).0 == 200)
        #expect(try await Self.request("GET", "\(url)/api/v1/records", authorization: "Bearer \(read)").1.contains("auth-test"))
        // No token in the logs.
        #expect(!gateway.child.stderr.text.contains(admin) && !gateway.child.stdout.text.contains(admin))

        // The CLI: --token-file, then OTAMESH_TOKEN, then the data directory's token files.
        #expect(try run(["members", "--admin", url, "--json", "--token-file", gateway.readTokenFile]).0 == 0)
        let (wrong, _, wrongErr) = try run(["members", "--admin", url], environment: ["OTAMESH_TOKEN": "x\(admin)"])
        #expect(wrong == 1 && wrongErr.contains("HTTP 401") && wrongErr.contains("unknown bearer token"), "\(wrongErr)")
        #expect(!wrongErr.contains(admin))
        #expect(try run(["members", "--admin", url, "--json"], environment: ["OTAMESH_TOKEN": read]).0 == 0)
        #expect(try run(["members", "--admin", url, "--json", "--data-dir", data]).0 == 0)
        let (none, _, noneErr) = try run(["members", "--admin", url, "--data-dir", dir.file("nowhere")])
        #expect(none == 1 && noneErr.contains("no admin API token"), "\(noneErr)")
        let (readOnly, _, readOnlyErr) = try run(["keys", "rotate-site", "--admin", url, "--token-file", gateway.readTokenFile, "--timeout", "1s"])
        #expect(readOnly == 1 && readOnlyErr.contains("HTTP 403") && readOnlyErr.contains("read-only token"), "\(readOnlyErr)")
    }

    @Test("admin API tokens: kept across restarts; admin.tokenFile / admin.readTokenFile override the paths; a bad token file stops the start")
    func tokenFiles() async throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let first = try Gateway.start(data: data)
        let token = first.token
        first.stop()
        let second = try Gateway.start(data: data)
        #expect(second.token == token && !second.child.stdout.text.contains("new admin API tokens"))
        second.stop()

        // Configured files: an operator's own admin token is used as it is; a missing read token is created there.
        let own = "operator-chosen-token-0123456789"
        try Data("\(own)\n".utf8).write(to: URL(fileURLWithPath: dir.file("admin.token")))
        chmod(dir.file("admin.token"), 0o600)  // a token file others can read is refused (StartupFailureTests)
        let configured = try Gateway.start(
            data: dir.file("data2"),
            extra: [
                "--admin-token-file", dir.file("admin.token"),
                "--admin-read-token-file", dir.file("sub/read.token"),
            ])
        defer { configured.stop() }
        #expect(configured.child.stdout.text.contains("new admin API tokens: \(dir.file("sub/read.token")) (read-only)"))
        #expect(configured.token == own && FileManager.default.fileExists(atPath: dir.file("sub/read.token")))
        #expect(!FileManager.default.fileExists(atPath: dir.file("data2/keys/admin.token")))
        #expect(try await Self.request("POST", "\(configured.admin)/api/v1/records/own", authorization: "Bearer \(own)", body: Data("y".utf8)).0 == 200)

        // A token too short to be safe: the agent says which file and exits.
        try Data("short\n".utf8).write(to: URL(fileURLWithPath: dir.file("weak.token")))
        chmod(dir.file("weak.token"), 0o600)
        let (status, _, err) = try run(
            [
                "agent", "--data-dir", dir.file("data3"), "--admin-listen", "127.0.0.1:0", "--device-listen", "127.0.0.1:0",
                "--device-tls-listen", "off", "--gossip-listen", "off", "--discovery", "off",
                "--admin-token-file", dir.file("weak.token"),
            ], timeout: 30)
        #expect(status != 0 && err.contains("admin API token file \(dir.file("weak.token")): a token needs 16 to 512 characters"), "\(err)")
    }
}
