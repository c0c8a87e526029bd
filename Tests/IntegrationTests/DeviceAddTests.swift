import Foundation
import Testing

/// `otamesh device add` / `remove` and `otamesh devices` on a data directory (no agent): what is
/// written, what bad input leaves behind (nothing), and that passwords never show.
@Suite("device add and remove")
struct DeviceAddTests {
    @Test("add validates everything before writing; devices shows segment, source and proxy; remove takes the password too")
    func addAndRemove() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let secrets = "\(data)/keys/device-secrets.json"
        let base = ["device", "add", "--data-dir", data, "--id", "lamp-1", "--family", "fetch-url", "--address", "10.77.3.20:8080"]
        for (extra, words) in [
            (["--option", "body={\"url\":\"{uri}\"}"], "unknown placeholder {uri}"),
            (["--option", "method=FETCH"], "option method"),
            (["--proxy", "proxy:3128"], "--proxy"),
            (["--password-env", "OTAMESH_TEST_UNSET_PASSWORD"], "is not set"),
        ] {
            let (status, _, err) = try run(base + extra)
            #expect(status != 0 && err.contains(words), "\(extra): \(err)")
        }
        #expect(!FileManager.default.fileExists(atPath: secrets))
        #expect(try run(["devices", "--data-dir", data]).1.contains("lamp-1") == false, "bad input wrote nothing")

        let (added, out, err) = try run(
            base + ["--option", "path=/api/ota", "--proxy", "http://10.77.0.1:3128", "--password-env", "LAMP_PW"],
            environment: ["LAMP_PW": "pw-lamp-77"])
        #expect(added == 0 && out.contains("segment 10.77.3.0/24") && out.contains("password stored"), "\(out) \(err)")
        let (_, listed, _) = try run(["devices", "--data-dir", data])
        let (_, json, _) = try run(["devices", "--data-dir", data, "--json"])
        #expect(listed.contains("segment 10.77.3.0/24") && listed.contains("source manual") && listed.contains("proxy http://10.77.0.1:3128"), "\(listed)")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["options"] as? String == "{\"path\":\"/api/ota\"}" && object?["source"] as? String == "manual", "\(json)")
        #expect(!listed.contains("pw-lamp-77") && !json.contains("pw-lamp-77"))
        #expect((try? String(contentsOfFile: secrets, encoding: .utf8))?.contains("pw-lamp-77") == true)

        let (removed, removedOut, _) = try run(["device", "remove", "--data-dir", data, "lamp-1"])
        #expect(removed == 0 && removedOut.contains("lamp-1: removed (and its secrets)"), "\(removedOut)")
        #expect((try? String(contentsOfFile: secrets, encoding: .utf8))?.contains("pw-lamp-77") == false)
        #expect(try run(["devices", "--data-dir", data]).1.contains("lamp-1") == false)
        let (again, _, againErr) = try run(["device", "remove", "--data-dir", data, "lamp-1"])
        #expect(again == 1 && againErr.contains("no device lamp-1"), "\(againErr)")

        // A device no rollout pushes says so in the list; a bad dialect is refused before anything is written.
        let relay = ["device", "add", "--data-dir", data, "--id", "relay-1", "--family", "arduino-ota", "--address", "10.77.3.21:3232"]
        let (badDialect, _, badErr) = try run(relay + ["--option", "dialect=espnow"])
        #expect(badDialect != 0 && badErr.contains("arduino-ota knows arduino and esphome"), "\(badErr)")
        #expect(try run(relay + ["--option", "confirm=none"]).0 == 0)
        #expect(try run(["devices", "--data-dir", data]).1.contains("not pushed (confirm=none: no version endpoint)"))
    }

    @Test(
        "while an agent runs, device changes go through its admin API: it serves an added or tagged device at once, and refusals say why and change nothing"
    )
    func throughRunningAgent() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }
        let secrets = "\(data)/keys/device-secrets.json"

        let (added, out, err) = try run(
            ["device", "add", "--data-dir", data, "--id", "lamp-1", "--family", "fetch-url", "--address", "10.77.3.20:8080", "--password-env", "LAMP_PW"],
            environment: ["LAMP_PW": "pw-lamp-77"])
        #expect(
            added == 0 && out.contains("lamp-1: fetch-url at 10.77.3.20:8080") && out.contains("through the running agent at \(gateway.admin)"), "\(out) \(err)"
        )
        #expect((try? String(contentsOfFile: secrets, encoding: .utf8))?.contains("pw-lamp-77") == true)
        // The agent's own registry has it now: the site view it serves lists it, with the tags set next.
        let (tagged, tagOut, _) = try run(["device", "tag", "--data-dir", data, "lamp-1", "floor2"])
        #expect(tagged == 0 && tagOut.contains("lamp-1: tags floor2"), "\(tagOut)")
        let (_, site, _) = try run(["devices", "--site", "--data-dir", data, "--json"])
        #expect(site.contains("\"lamp-1\"") && site.contains("floor2"), "\(site)")

        // Refusals: a target nobody trusts, an unknown device; nothing changes.
        let (assign, _, assignErr) = try run(["device", "assign", "--data-dir", data, "lamp-1", "no/such.bin"])
        #expect(assign == 1 && assignErr.contains("otamesh device assign: target no/such.bin is not in the trusted metadata"), "\(assignErr)")
        let (accept, _, acceptErr) = try run(["device", "accept", "--data-dir", data, "ghost-9"])
        #expect(accept == 1 && acceptErr.contains("no device ghost-9"), "\(acceptErr)")

        let (removed, removedOut, _) = try run(["device", "remove", "--data-dir", data, "lamp-1"])
        #expect(removed == 0 && removedOut.contains("lamp-1: removed (and its secrets)"), "\(removedOut)")
        #expect((try? String(contentsOfFile: secrets, encoding: .utf8))?.contains("pw-lamp-77") == false)
        let (again, _, againErr) = try run(["device", "remove", "--data-dir", data, "lamp-1"])
        #expect(again == 1 && againErr.contains("no device lamp-1"), "\(againErr)")
    }
}
