import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh rollout status|list` end to end against a tiny fake that only serves canned
/// RolloutStatus JSON behind a bearer token: the CLI's paths, token and rendering. The rollout
/// API itself is the agent's (tested where it is built); this fake stands in for nothing else.
@Suite("rollout CLI against a canned status", .serialized)
struct RolloutStatusCLITests {
    static let id = "r-0123456789ab"
    static let status = """
        {"id": "r-0123456789ab", "mode": "running",
         "plan": {"target": {"path": "esp32/app/2.1.0.bin", "sha256": "\(String(repeating: "ab", count: 32))", "length": 1234567, "version": "2.1.0"},
                  "select": "hardware=esp32", "stages": [10, 100], "soak": 600, "success": 95, "maxFailurePercent": 5,
                  "minFinished": 5, "concurrency": 4, "deviceTimeout": 1800},
         "approvals": 2, "threshold": 2, "stage": 0, "stageSince": 1700000000000,
         "stages": [{"percent": 10, "targeted": 10, "succeeded": 4, "failed": 1, "inFlight": 2},
                    {"percent": 100, "targeted": 100, "succeeded": 4, "failed": 1, "inFlight": 2}],
         "gateways": {"gw-a": {"targeted": 10, "succeeded": 4, "failed": 1, "inFlight": 2}},
         "controls": [], "pending": [], "lastSequence": 1, "finished": 5, "failed": 1}
        """

    /// Serves GET /api/v1/rollouts and /api/v1/rollouts/{id} from files, 401 without the token.
    static let fake = #"""
        import http.server, os, sys
        token, root = open(sys.argv[1]).read().strip(), sys.argv[2]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization") != "Bearer " + token:
                    return self.answer(401, b"unknown bearer token\n", "text/plain")
                name = "rollouts" if self.path == "/api/v1/rollouts" else self.path[len("/api/v1/rollouts/"):] if self.path.startswith("/api/v1/rollouts/") else ""
                path = os.path.join(root, name + ".json")
                if not name or "/" in name or not os.path.exists(path):
                    return self.answer(404, b"rollout not known on this gateway\n", "text/plain")
                self.answer(200, open(path, "rb").read(), "application/json")
            def answer(self, code, body, kind):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, format, *args):
                sys.stderr.write("%s %s\n" % (self.command, self.path))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print("port", server.server_address[1], flush=True)
        server.serve_forever()
        """#

    @Test("status and list: the requests carry the token; text without bars off a terminal; --json as served; errors name the status")
    func statusAndList() throws {
        let dir = try TemporaryDirectory()
        try Data(Self.fake.utf8).write(to: URL(fileURLWithPath: dir.file("fake.py")))
        try Data("fake-token-0123456789\n".utf8).write(to: URL(fileURLWithPath: dir.file("token")))
        try Data(Self.status.utf8).write(to: URL(fileURLWithPath: dir.file("\(Self.id).json")))
        try Data("{\"rollouts\": [\(Self.status)]}".utf8).write(to: URL(fileURLWithPath: dir.file("rollouts.json")))
        let server = try Child("/usr/bin/env", ["python3", "-u", dir.file("fake.py"), dir.file("token"), dir.path])
        defer {
            server.signal(SIGKILL)
            server.wait(timeout: 10)
        }
        #expect(waitUntil(timeout: 20) { server.stdout.text.contains("port ") })
        let port = try #require(server.stdout.lines.first?.split(separator: " ").last)
        let api = ["--admin", "http://127.0.0.1:\(port)", "--token-file", dir.file("token")]

        let (listStatus, list, listErr) = try run(["rollout", "list"] + api)
        #expect(listStatus == 0, "\(listErr)")
        #expect(list == """
            ID              MODE     TARGET               STAGE  SUCCEEDED  FAILED
            r-0123456789ab  running  esp32/app/2.1.0.bin  1/2    4          1

            """)

        let (status, text, err) = try run(["rollout", "status", Self.id] + api)
        #expect(status == 0, "\(err)")
        #expect(text.hasPrefix("r-0123456789ab  running  stage 1/2 (10%) since 2023-11-14T22:13:20Z\n"))
        #expect(text.contains("  1 *    10%      10        4          1       2\n") && !text.contains("[#"), "\(text)")
        #expect(text.contains("  gw-a     10        4          1       2"))

        let (jsonStatus, json, _) = try run(["rollout", "status", Self.id, "--json"] + api)
        #expect(jsonStatus == 0 && json == Self.status + "\n")
        #expect(try run(["rollout", "status"] + api).1.hasPrefix("r-0123456789ab  running"))
        #expect(server.stderr.lines.contains("GET /api/v1/rollouts/\(Self.id)") && server.stderr.lines.contains("GET /api/v1/rollouts"))

        let (unknown, _, unknownErr) = try run(["rollout", "status", "r-00000000000f"] + api)
        #expect(unknown == 1 && unknownErr == "otamesh rollout status: GET /api/v1/rollouts/r-00000000000f: HTTP 404: rollout not known on this gateway\n")
        let (refused, _, refusedErr) = try run(["rollout", "list", "--admin", "http://127.0.0.1:\(port)"], environment: ["OTAMESH_TOKEN": "another-token-0123456789"])
        #expect(refused == 1 && refusedErr.contains("HTTP 401: unknown bearer token"), "\(refusedErr)")
        let (badID, _, badIDErr) = try run(["rollout", "status", "latest"] + api)
        #expect(badID == 1 && badIDErr.contains("'latest' is not r- and 12 lower-case hex digits"))

        // Signing commands need an admin key; without one nothing is sent.
        let before = server.stderr.lines.count
        let (noKey, _, noKeyErr) = try run(["rollout", "pause", Self.id] + api, environment: ["OTAMESH_ADMIN_KEY": "", "OTAMESH_ADMIN_KEY_FILE": ""])
        #expect(noKey == 1 && noKeyErr.contains("admin key: none given: use --key FILE"), "\(noKeyErr)")
        let (badStart, _, badStartErr) = try run(["rollout", "start", "--target", "x", "--select", "all", "--stages", "50,10", "--key", dir.file("token")] + api)
        #expect(badStart == 1 && badStartErr.contains("not an Ed25519, ECDSA P-256 or RSA private key"), "\(badStartErr)")
        #expect(server.stderr.lines.count == before)
    }
}
