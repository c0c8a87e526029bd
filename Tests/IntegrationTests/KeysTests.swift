import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("site admin keys")
struct KeysTests {
    @Test("generate, site trust file, co-signed command, replay refused")
    func flow() throws {
        let dir = try TemporaryDirectory()
        for (name, type) in [("alice", "ed25519"), ("bob", "ecdsa")] {
            #expect(try run(["keys", "generate", "--name", name, "--type", type, "--dir", dir.path]).0 == 0)
        }
        let mode = (try FileManager.default.attributesOfItem(atPath: dir.file("alice.pem"))[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o600)
        let trust = dir.file("site-trust.json")
        #expect(try run(["keys", "site-trust", "--site", "b7", "--threshold", "2", "-o", trust, dir.file("alice.pub.json"), dir.file("bob.pub.json")]).0 == 0)
        let command = dir.file("cmd.json")
        #expect(
            try run([
                "keys", "sign-command", "--key", dir.file("alice.pem"), "--site", "b7", "--sequence", "3",
                "--kind", "rollout.pause", "--payload", #"{"rollout":"r1"}"#, "-o", command,
            ]).0 == 0)
        let (one, _, oneErr) = try run(["keys", "verify-command", "--trust", trust, command])
        #expect(one == 1 && oneErr.contains("1 valid signature(s) from distinct site admin keys, 2 required"))
        #expect(try run(["keys", "sign-command", "--key", dir.file("bob.pem"), "--add-to", command]).0 == 0)
        #expect(try run(["keys", "verify-command", "--trust", trust, command]).0 == 0)
        let (replay, _, replayErr) = try run(["keys", "verify-command", "--trust", trust, "--last", "3", command])
        #expect(replay == 1 && replayErr.contains("replayed (sequence 3 already accepted)"))
        #expect(try run(["keys", "generate", "--name", "alice", "--dir", dir.path]).0 == 1, "never overwrites a private key")
        // A key directory that does not exist yet is made, private.
        #expect(try run(["keys", "generate", "--name", "carol", "--dir", dir.file("new/keys")]).0 == 0)
        let dirMode = (try FileManager.default.attributesOfItem(atPath: dir.file("new/keys"))[.posixPermissions] as? Int) ?? 0
        #expect(dirMode == 0o700 && FileManager.default.fileExists(atPath: dir.file("new/keys/carol.pem")))
    }

    @Test("site-trust refuses a key listed twice and a threshold above the distinct keys; keeps each admin's name")
    func siteTrustChecks() throws {
        let dir = try TemporaryDirectory()
        for name in ["alice", "bob"] { #expect(try run(["keys", "generate", "--name", name, "--dir", dir.path]).0 == 0) }
        let trust = dir.file("site-trust.json")
        let (twice, _, twiceErr) = try run([
            "keys", "site-trust", "--site", "b7", "--threshold", "2", "-o", trust,
            dir.file("alice.pub.json"), dir.file("alice.pub.json"),
        ])
        #expect(twice == 1 && twiceErr.contains("otamesh keys site-trust: ") && twiceErr.contains("is listed twice"), "\(twiceErr)")
        #expect(!FileManager.default.fileExists(atPath: trust))
        let (over, _, overErr) = try run([
            "keys", "site-trust", "--site", "b7", "--threshold", "3", "-o", trust,
            dir.file("alice.pub.json"), dir.file("bob.pub.json"),
        ])
        #expect(over == 1 && overErr.contains("threshold 3 needs 1…2"), "\(overErr)")
        let (ok, out, _) = try run([
            "keys", "site-trust", "--site", "b7", "--threshold", "2", "-o", trust,
            dir.file("alice.pub.json"), dir.file("bob.pub.json"),
        ])
        #expect(ok == 0 && out.contains("2 of 2 admins") && out.contains("alice ") && out.contains("bob "), "\(out)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trust))) as? [String: Any])
        #expect(Set(((json["names"] as? [String: String]) ?? [:]).values) == ["alice", "bob"])
    }

    @Test("a private key others can read is refused by the commands that sign, unless --insecure-permissions")
    func openKeyRefused() throws {
        let dir = try TemporaryDirectory()
        #expect(try run(["keys", "generate", "--name", "alice", "--dir", dir.path]).0 == 0)
        chmod(dir.file("alice.pem"), 0o640)
        let args = [
            "keys", "sign-command", "--key", dir.file("alice.pem"), "--site", "b7", "--sequence", "1", "--kind", "rollout.pause",
            "-o", dir.file("cmd.json"),
        ]
        let (status, _, err) = try run(args)
        #expect(
            status == 1
                && err
                    == "otamesh keys sign-command: \(dir.file("alice.pem")): mode 0640 gives group/other access; chmod 600 it, or pass --insecure-permissions\n",
            "\(err)")
        #expect(try run(args + ["--insecure-permissions"]).0 == 0)
    }
}
