import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh tuf` (the TUF conformance client protocol) against python-tuf repositories served
/// over real HTTP on 127.0.0.1.
@Suite("tuf conformance CLI", .serialized)
struct TUFCLITests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/tuf").path

    /// A static HTTP server (python3 -m http.server) on a free loopback port.
    struct ServerFailure: Error { let output: String }

    final class StaticServer {
        let child: Child
        let url: String

        init(directory: String) throws {
            let child = try Child("/usr/bin/env", ["python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "0"])
            self.child = child
            let ready = waitUntil(timeout: 20) { child.stdout.text.contains("Serving HTTP on") || !child.process.isRunning }
            guard ready, let line = child.stdout.lines.first(where: { $0.contains("Serving HTTP on") }),
                let port = line.split(separator: " ").drop(while: { $0 != "port" }).dropFirst().first
            else {
                child.signal(SIGKILL)
                throw ServerFailure(output: child.stderr.text)
            }
            url = "http://127.0.0.1:\(port)"
        }

        /// Request lines the server logged, e.g. `GET /metadata/timestamp.json`.
        var requests: [String] {
            child.stderr.lines.compactMap { line in
                guard let start = line.firstIndex(of: "\""), let end = line[line.index(after: start)...].firstIndex(of: "\"") else { return nil }
                return line[line.index(after: start)..<end].split(separator: " ").prefix(2).joined(separator: " ")
            }
        }

        deinit {
            // A fixture server needs no graceful shutdown (python's takes seconds to honour SIGTERM).
            child.signal(SIGKILL)
            child.wait(timeout: 10)
        }
    }

    @Test("after root rotations the metadata directory holds exactly the trusted role files; the root history sits beside it")
    func rootHistoryBeside() throws {
        let dir = try TemporaryDirectory()
        let server = try StaticServer(directory: "\(Self.fixtures)/root-rotation/server")
        let meta = dir.file("metadata")
        #expect(try run(["tuf", "--metadata-dir", meta, "init", "\(Self.fixtures)/root-rotation/client/root.json"]).0 == 0)
        let (refresh, _, refreshErr) = try run(["tuf", "--metadata-dir", meta, "--metadata-url", "\(server.url)/metadata", "refresh"])
        #expect(refresh == 0, "\(refreshErr)")
        #expect(Set(listing(meta)) == ["root.json", "timestamp.json", "snapshot.json", "targets.json"], "\(listing(meta))")
        #expect(Set(listing(dir.file("metadata.roots"))) == ["2.root.json", "3.root.json"])
    }

    @Test("init, refresh and download a python-tuf repository; a cached target is not fetched again")
    func basic() throws {
        let dir = try TemporaryDirectory()
        let server = try StaticServer(directory: "\(Self.fixtures)/basic/server")
        let meta = dir.file("metadata")
        let targets = dir.file("targets")
        #expect(try run(["tuf", "--metadata-dir", meta, "init", "\(Self.fixtures)/basic/client/root.json"]).0 == 0)
        let (refresh, _, refreshErr) = try run(["tuf", "--metadata-dir", meta, "--metadata-url", "\(server.url)/metadata", "refresh"])
        #expect(refresh == 0, "\(refreshErr)")
        #expect(Set(listing(meta)) == ["root.json", "timestamp.json", "snapshot.json", "targets.json"])
        let download = [
            "tuf", "--metadata-dir", meta, "--metadata-url", "\(server.url)/metadata",
            "--target-name", "esp32/projectMM/2.1.0.bin", "--target-base-url", "\(server.url)/targets",
            "--target-dir", targets, "download",
        ]
        let (status, _, err) = try run(download)
        #expect(status == 0, "\(err)")
        #expect(listing(targets) == ["esp32%2FprojectMM%2F2.1.0.bin"])
        let fetchesBefore = server.requests.filter { $0.hasPrefix("GET /targets/") }.count
        #expect(fetchesBefore == 1)
        #expect(try run(download).0 == 0)
        #expect(server.requests.filter { $0.hasPrefix("GET /targets/") }.count == fetchesBefore, "cached target fetched again")
        // A target no metadata lists: exit 1 with the reason.
        var missing = download
        missing[6] = "esp32/projectMM/9.9.9.bin"
        let (missingStatus, _, missingErr) = try run(missing)
        #expect(missingStatus == 1)
        #expect(missingErr.contains("esp32/projectMM/9.9.9.bin: no trusted targets metadata lists this target"))
    }

    @Test(
        "attacks over HTTP exit 1 and name what failed",
        arguments: [
            ("expired-timestamp", "timestamp.json: expired at"),
            ("rollback-timestamp", "timestamp.json: rollback"),
            ("mix-and-match", "targets.json: version"),
            ("threshold-not-met", "targets.json: 1 valid signature(s) from distinct trusted keys, 2 required"),
            ("timestamp-too-large", "timestamp.json: larger than the 16384-byte limit"),
        ])
    func attacks(scenario: String, message: String) throws {
        let dir = try TemporaryDirectory()
        let server = try StaticServer(directory: "\(Self.fixtures)/\(scenario)/server")
        let meta = dir.file("metadata")
        try FileManager.default.createDirectory(atPath: meta, withIntermediateDirectories: true)
        for name in listing("\(Self.fixtures)/\(scenario)/client") {
            try FileManager.default.copyItem(atPath: "\(Self.fixtures)/\(scenario)/client/\(name)", toPath: "\(meta)/\(name)")
        }
        let (status, _, err) = try run(["tuf", "--metadata-dir", meta, "--metadata-url", "\(server.url)/metadata", "refresh"])
        #expect(status == 1)
        #expect(err.contains(message), "\(err)")
    }

    @Test("targets behind delegations download over HTTP")
    func delegations() throws {
        let dir = try TemporaryDirectory()
        let server = try StaticServer(directory: "\(Self.fixtures)/delegations/server")
        let meta = dir.file("metadata")
        #expect(try run(["tuf", "--metadata-dir", meta, "init", "\(Self.fixtures)/delegations/client/root.json"]).0 == 0)
        let scenarios = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/scenarios.json"))) as? [String: Any]
        let expected = ((scenarios?["delegations"] as? [String: Any])?["targets"] as? [String: Any]) ?? [:]
        let good = expected.filter { ($0.value as? String) == "ok" }.map(\.key).sorted()
        #expect(!good.isEmpty)
        var arguments = ["tuf", "--metadata-dir", meta, "--metadata-url", "\(server.url)/metadata"]
        for path in good { arguments += ["--target-name", path] }
        arguments += ["--target-base-url", "\(server.url)/targets", "--target-dir", dir.file("targets"), "download"]
        let (status, _, err) = try run(arguments)
        #expect(status == 0, "\(err)")
        #expect(listing(dir.file("targets")).count == good.count)
    }
}
