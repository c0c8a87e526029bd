import Foundation
import Testing

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
        #expect(try run(["keys", "sign-command", "--key", dir.file("alice.pem"), "--site", "b7", "--sequence", "3",
                         "--kind", "rollout.pause", "--payload", #"{"rollout":"r1"}"#, "-o", command]).0 == 0)
        let (one, _, oneErr) = try run(["keys", "verify-command", "--trust", trust, command])
        #expect(one == 1 && oneErr.contains("1 valid signature(s) from distinct site admin keys, 2 required"))
        #expect(try run(["keys", "sign-command", "--key", dir.file("bob.pem"), "--add-to", command]).0 == 0)
        #expect(try run(["keys", "verify-command", "--trust", trust, command]).0 == 0)
        let (replay, _, replayErr) = try run(["keys", "verify-command", "--trust", trust, "--last", "3", command])
        #expect(replay == 1 && replayErr.contains("replayed (sequence 3 already accepted)"))
        #expect(try run(["keys", "generate", "--name", "alice", "--dir", dir.path]).0 == 1, "never overwrites a private key")
    }
}
