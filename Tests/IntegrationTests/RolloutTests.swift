import Foundation
import OTAMeshTestSupport
import Testing

/// Staged rollouts end to end: two real agents in one mesh (loopback), emulated devices polling
/// them, every step through `otamesh rollout` with admin keys and bearer tokens.
@Suite("rollouts end to end", .serialized)
struct RolloutTests {
    final class Site {
        let dir: TemporaryDirectory
        let gw1: Gateway
        let gw2: Gateway
        let keys: String

        init(gw1Extra: [String] = [], gw2Extra: [String] = []) throws {
            let dir = try TemporaryDirectory()
            self.dir = dir
            keys = dir.file("admins")
            let images = try ["2.0.0", "3.0.0"].map {
                try PublishedRelease.Image.esp32("esp32/app/\($0).bin", version: $0, size: 120000, file: dir.file("esp32-\($0).bin"))
            }
            _ = try PublishedRelease(in: dir, images: images, importingInto: [dir.file("d1"), dir.file("d2")])
            try writeSiteKeyring(to: dir.file("site.keyring"), site: "rollout-site")
            // Admins A and B must both sign; the rogue's key is well formed but not the site's.
            let signing = try SignedSite(site: "rollout-site", admins: ["admin-a", "admin-b"], threshold: 2, outsiders: ["rogue"])
            try signing.writeKeys(to: keys)
            try signing.writeTrustFile(to: dir.file("site-trust.json"))
            let common = ["--site-keyring", dir.file("site.keyring"), "--site-trust", dir.file("site-trust.json")]
            gw1 = try Gateway.start(data: dir.file("d1"), extra: ["--node-name", "gw1"] + common + gw1Extra)
            gw2 = try Gateway.start(data: dir.file("d2"), extra: ["--node-name", "gw2", "--join", gw1.gossip!] + common + gw2Extra)
        }

        deinit {
            gw1.stop()
            gw2.stop()
        }

        func rollout(_ args: [String], at gateway: Gateway, key: String? = nil) throws -> (Int32, String, String) {
            let signing = key.map { ["--key", "\(keys)/\($0).pem"] } ?? []
            return try run(["rollout"] + args + ["--admin", gateway.admin] + gateway.tokenArguments + signing, timeout: 30)
        }

        func status(_ id: String, at gateway: Gateway) -> [String: Any]? {
            guard let (code, out, _) = try? rollout(["status", id, "--json"], at: gateway), code == 0 else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        }

        func mode(_ id: String, at gateway: Gateway) -> String? { status(id, at: gateway)?["mode"] as? String }

        /// Runs `count` generic ESP32 devices of gw2 from `version` until each updated (or the deadline).
        func fleet(base: String, count: Int, version: String, deadline: Int, extra: [String] = []) throws -> (Int32, String) {
            let args =
                [
                    "run", "--family", "generic", "--hardware", "esp32", "--count", "\(count)", "--mac-base", base, "--version", version,
                    "--gateway", gw2.device, "--interval", "0.2", "--until-updated", "--deadline", "\(deadline)", "--timeout", "2", "--quiet",
                ] + extra
            let (status, out, err) = try runProgram(Binaries.devicesim, args, timeout: Double(deadline + 30))
            return (status, out + err)
        }

        static func id(in output: String) -> String? {
            output.split(whereSeparator: { !$0.isLetter && !$0.isNumber && $0 != "-" }).first { $0.hasPrefix("r-") && $0.count == 14 }.map(String.init)
        }
    }

    @Test("a 2-of-2 plan waits for approval, then runs 50 % → 100 % on real devices; a failing release halts both gateways")
    func twoGateways() throws {
        let site = try Site()
        #expect(site.gw2.child.process.isRunning)

        // Refused everywhere: a plan signed only by a key outside the site trust.
        for gateway in [site.gw1, site.gw2] {
            let (status, out, err) = try site.rollout(
                ["start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "100"],
                at: gateway, key: "rogue")
            #expect(status != 0, "a plan signed by a rogue key must be refused: \(out)")
            #expect((out + err).contains("admin"), "\(out) \(err)")
        }

        // Admin A starts; the site needs two admins, so nothing is offered yet.
        let (started, out, err) = try site.rollout(
            [
                "start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "50,100", "--soak", "1s",
                "--success", "50%", "--max-failures", "0", "--min-finished", "1", "--concurrency", "4",
            ], at: site.gw1, key: "admin-a")
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(Site.id(in: out), "no rollout id in: \(out)")
        #expect(waitUntil(timeout: 20) { site.mode(id, at: site.gw2) == "awaiting approval" }, "the plan reaches the other gateway")
        let early = try site.fleet(base: "24:0a:c4:70:00:00", count: 4, version: "1.0.0", deadline: 2)
        #expect(early.0 != 0, "no device may update before the plan has its second signature: \(early.1.suffix(800))")
        // Before signing, admin B previews the selection at the gateway that serves the devices.
        let (previewed, preview, previewErr) = try site.rollout(
            ["start", "--dry-run", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "50,100"], at: site.gw2)
        #expect(previewed == 0, "\(preview) \(previewErr)")
        #expect(preview.contains("4 of 4 known devices match") && preview.contains("nothing was signed or sent"), "\(preview)")
        // Any gateway previews the whole site: gw1 counts gw2's devices from their gossiped summaries.
        var sitePreview = ""
        let seenAtGW1 = waitUntil(timeout: 30) {
            sitePreview =
                (try? site.rollout(
                    ["start", "--dry-run", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "50,100"],
                    at: site.gw1))?.1 ?? ""
            return sitePreview.contains("4 of 4 known devices match")
        }
        #expect(seenAtGW1 && sitePreview.contains("  gw2 "), "\(sitePreview)")

        // Admin B approves at the other gateway; the devices of gw2 update, stage by stage.
        let (approved, approveOut, approveErr) = try site.rollout(["approve", id], at: site.gw2, key: "admin-b")
        #expect(approved == 0, "\(approveOut) \(approveErr)")
        let fleet = try site.fleet(base: "24:0a:c4:70:00:00", count: 4, version: "1.0.0", deadline: 60)
        #expect(fleet.0 == 0, "every selected device updates once approved: \(fleet.1.suffix(1500))")
        #expect(
            waitUntil(timeout: 30) { site.mode(id, at: site.gw1) == "completed" && site.mode(id, at: site.gw2) == "completed" },
            "both gateways see the rollout complete: \(String(describing: site.status(id, at: site.gw1)))")
        let stages = site.status(id, at: site.gw1)?["stages"] as? [[String: Any]] ?? []
        #expect(stages.last?["succeeded"] as? Int == 4 && stages.last?["failed"] as? Int == 0, "\(stages)")
        let (listed, devices, listErr) = try site.rollout(["status", id, "--devices"], at: site.gw1)
        #expect(listed == 0 && devices.components(separatedBy: " succeeded ").count - 1 == 4, "each device's attempt is listed: \(devices) \(listErr)")
        #expect(
            devices.contains("signed    the plan by ") && devices.contains("admin-a (") && devices.contains("admin-b (")
                && devices.contains("(written by admin-a ("), "who signed and who wrote it: \(devices)")

        // Completed is terminal: devices seen for the first time now are not taken by it.
        let newcomers = try site.fleet(base: "24:0a:c4:71:00:00", count: 2, version: "1.0.0", deadline: 3)
        #expect(newcomers.0 != 0, "a completed rollout took new devices: \(newcomers.1.suffix(800))")
        #expect(site.mode(id, at: site.gw2) == "completed" && site.status(id, at: site.gw2)?["completion"] != nil)

        // A second release whose install fails on every device (the flash write is corrupted):
        // the first failure crosses max-failures 0 and the halt reaches both gateways.
        let (second, secondOut, secondErr) = try site.rollout(
            [
                "start", "--target", "esp32/app/3.0.0.bin", "--select", "hardware=esp32", "--stages", "100", "--soak", "1s",
                "--max-failures", "0", "--min-finished", "1", "--concurrency", "1",
            ], at: site.gw1, key: "admin-a")
        #expect(second == 0, "\(secondOut) \(secondErr)")
        let id2 = try #require(Site.id(in: secondOut))
        #expect(try site.rollout(["approve", id2], at: site.gw1, key: "admin-b").0 == 0)
        _ = try site.fleet(base: "24:0a:c4:70:00:00", count: 4, version: "2.0.0", deadline: 15, extra: ["--corrupt-flash"])
        #expect(
            waitUntil(timeout: 30) { site.mode(id2, at: site.gw1) == "halted" && site.mode(id2, at: site.gw2) == "halted" },
            "the halt reaches every gateway: \(String(describing: site.status(id2, at: site.gw1)))")
        let halted = site.status(id2, at: site.gw2) ?? [:]
        #expect((halted["failed"] as? Int ?? 0) >= 1)
        // Concurrency 1: the one device in flight failed, and no other started after the halt.
        let started2 = (halted["stages"] as? [[String: Any]])?.last.map {
            ($0["succeeded"] as? Int ?? 0) + ($0["failed"] as? Int ?? 0) + ($0["inFlight"] as? Int ?? 0)
        }
        #expect(started2 == 1, "no new device update starts after the halt: \(halted)")

        // An unsigned resume is impossible; a resume signed by one admin of two stays pending.
        let (resumed, resumeOut, _) = try site.rollout(["resume", id2], at: site.gw2, key: "admin-a")
        #expect(resumed == 0, "\(resumeOut)")
        #expect(site.mode(id2, at: site.gw2) == "halted", "one of two signatures does not resume")
    }

    @Test("a gateway SIGKILLed after it approved and halted a rollout comes back with both, alone, and a new gateway joining only it learns them")
    func restartKeepsOwnRecords() throws {
        let site = try Site()
        let (started, out, err) = try site.rollout(
            ["start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "100"], at: site.gw1, key: "admin-a")
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(Site.id(in: out), "no rollout id in: \(out)")
        let (approved, approveOut, approveErr) = try site.rollout(["approve", id], at: site.gw1, key: "admin-b")
        #expect(approved == 0, "\(approveOut) \(approveErr)")
        #expect(try site.rollout(["halt", id, "--reason", "boot loops on floor 2"], at: site.gw1).0 == 0)
        #expect(waitUntil(timeout: 30) { site.mode(id, at: site.gw2) == "halted" }, "\(String(describing: site.status(id, at: site.gw2)))")

        // gw1 wrote the plan's signatures and the halt. With gw2 gone it has no peer to relearn
        // them from: after a SIGKILL they must come from its own disk.
        site.gw2.stop()
        site.gw1.child.signal(SIGKILL)
        site.gw1.child.wait(timeout: 30)
        let common = ["--site-keyring", site.dir.file("site.keyring"), "--site-trust", site.dir.file("site-trust.json")]
        let gw1 = try Gateway.start(data: site.dir.file("d1"), extra: ["--node-name", "gw1"] + common)
        defer { gw1.stop() }
        #expect(
            gw1.child.stdout.text.contains("gossip records restored") || gw1.child.stderr.text.contains("gossip records restored"),
            "the agent says it restored its records")
        let status = try #require(site.status(id, at: gw1))
        #expect(status["mode"] as? String == "halted", "\(status)")
        #expect(status["approvals"] as? Int == 2, "\(status)")
        #expect(((status["halt"] as? [String: Any])?["reason"] as? String)?.contains("boot loops on floor 2") == true, "\(status)")

        // A gateway that never met gw1 before joins only it: the restarted owner's digest must
        // not tell it that nothing older is missing.
        let (imported, importOut, importErr) = try run([
            "import", "--data-dir", site.dir.file("d3"), "--root", site.dir.file("pub/metadata/1.root.json"),
            site.dir.file("b.tar"),
        ])
        #expect(imported == 0, "\(importOut) \(importErr)")
        let gw3 = try Gateway.start(data: site.dir.file("d3"), extra: ["--node-name", "gw3", "--join", gw1.gossip!] + common)
        defer { gw3.stop() }
        #expect(waitUntil(timeout: 30) { site.mode(id, at: gw3) == "halted" }, "\(String(describing: site.status(id, at: gw3)))")
    }

    @Test("aborting a plan that awaits approval: the hint names the abort, approve asks which command, the signed abort retires the plan")
    func abortBeforeApproval() throws {
        let site = try Site()
        let (started, out, err) = try site.rollout(
            ["start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "100", "--soak", "1s"], at: site.gw1, key: "admin-a")
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(Site.id(in: out))
        #expect(out.contains("the plan #1 awaits approval") && out.contains("approve \(id) --sequence 1"), "\(out)")

        // Admin A changes their mind: the hint after the abort is about the abort, not the plan.
        let (aborted, abortOut, abortErr) = try site.rollout(["abort", id], at: site.gw1, key: "admin-a")
        #expect(aborted == 0, "\(abortOut) \(abortErr)")
        #expect(abortOut.contains("abort #2 awaits approval") && abortOut.contains("approve \(id) --sequence 2"), "\(abortOut)")
        #expect(!abortOut.contains("approve \(id)`"), "a hint that would co-sign the plan: \(abortOut)")

        // Admin B runs a bare approve: refused, it names both commands.
        #expect(waitUntil(timeout: 20) { (site.status(id, at: site.gw2)?["pending"] as? [Any])?.isEmpty == false })
        let (bare, bareOut, bareErr) = try site.rollout(["approve", id], at: site.gw2, key: "admin-b")
        #expect(bare != 0, "\(bareOut)")
        #expect(bareErr.contains("#1 the plan, #2 abort") && bareErr.contains("--sequence"), "\(bareErr)")
        let (signed, signedOut, signedErr) = try site.rollout(["approve", id, "--sequence", "2"], at: site.gw2, key: "admin-b")
        #expect(signed == 0, "\(signedOut) \(signedErr)")
        #expect(signedOut.contains("signing abort #2 of \(id)") && signedOut.contains("stops for good"), "\(signedOut)")
        #expect(
            waitUntil(timeout: 20) { site.mode(id, at: site.gw1) == "aborted" && site.mode(id, at: site.gw2) == "aborted" },
            "a fully signed abort retires a never-approved plan everywhere: \(String(describing: site.status(id, at: site.gw1)))")

        // Nothing can bring it back: approving the plan now is refused, and no device updates.
        let (late, lateOut, lateErr) = try site.rollout(["approve", id, "--sequence", "1"], at: site.gw1, key: "admin-b")
        #expect(late != 0 && lateErr.contains("aborted"), "\(lateOut) \(lateErr)")
        let fleet = try site.fleet(base: "24:0a:c4:72:00:00", count: 2, version: "1.0.0", deadline: 3)
        #expect(fleet.0 != 0, "an aborted plan updated devices: \(fleet.1.suffix(800))")
    }

    /// A webhook receiver on loopback: answers 500 to the first POST (the agent must retry),
    /// 204 after, and appends each body as one line to `log`. Prints its port first.
    static let receiver = """
        import http.server, sys
        log = sys.argv[1]
        seen = [0]
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                seen[0] += 1
                if seen[0] == 1:
                    self.send_response(500); self.end_headers(); return
                with open(log, 'ab') as f: f.write(body + b'\\n')
                self.send_response(204); self.end_headers()
            def log_message(self, *a): pass
        s = http.server.HTTPServer(('127.0.0.1', 0), H)
        print(s.server_address[1], flush=True)
        s.serve_forever()
        """

    @Test("alerts: approval and halt reach alerts.webhook (retried after a 500), and /metrics shows the rollout's mode and devices")
    func alertsAndMetrics() throws {
        let scratch = try TemporaryDirectory()
        let script = scratch.file("receiver.py")
        try Self.receiver.write(toFile: script, atomically: true, encoding: .utf8)
        let log = scratch.file("events.log")
        let server = try Child("/usr/bin/env", ["python3", script, log])
        defer { server.signal(SIGTERM); server.wait(timeout: 10) }
        #expect(waitUntil(timeout: 10) { !server.stdout.text.isEmpty }, "the receiver did not start: \(server.stderr.text)")
        let port = server.stdout.text.trimmingCharacters(in: .whitespacesAndNewlines)

        let site = try Site(gw1Extra: ["--alerts-webhook", "http://127.0.0.1:\(port)/hook"])
        let (started, out, err) = try site.rollout(
            ["start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "100", "--soak", "1s"], at: site.gw1, key: "admin-a")
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(Site.id(in: out))
        #expect(try site.rollout(["approve", id], at: site.gw1, key: "admin-b").0 == 0)
        #expect(try site.rollout(["halt", id, "--reason", "boot loops on floor 2"], at: site.gw1).0 == 0)
        func events() -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        #expect(waitUntil(timeout: 30) { events().contains { $0["kind"] as? String == "halted" } }, "events so far: \(events())")
        let received = events()
        let approved = received.first { $0["kind"] as? String == "approved" }
        #expect(approved?["rollout"] as? String == id && approved?["id"] as? String == "\(id)/approved/1", "\(received)")
        let halted = received.first { $0["kind"] as? String == "halted" }
        #expect((halted?["detail"] as? String)?.contains("boot loops on floor 2") == true && halted?["gateway"] as? String == "gw1", "\(received)")

        // Gauges follow within the agent's next upkeep.
        func metrics() -> String { (try? runProgram("/usr/bin/curl", ["-s", "\(site.gw1.admin)/metrics"]))?.1 ?? "" }
        var text = ""
        let halted1 = waitUntil(timeout: 10) {
            text = metrics()
            return text.split(separator: "\n").contains {
                $0.hasPrefix("otamesh_rollout_mode{") && $0.contains(id) && $0.contains("mode=\"halted\"") && ($0.hasSuffix(" 1") || $0.hasSuffix(" 1.0"))
            }
        }
        #expect(halted1, "\(text.split(separator: "\n").filter { $0.contains("otamesh_rollout") })")
        #expect(text.contains("otamesh_rollout_devices{"), "per-rollout device counts")
        #expect(text.contains("otamesh_alert_webhooks_total"), "deliveries are counted")
    }

    @Test("devices.admission known: devices that only asked wait as pending until `otamesh device accept`, then update")
    func admission() throws {
        let site = try Site(gw2Extra: ["--device-admission", "known"])
        let (started, out, err) = try site.rollout(
            ["start", "--target", "esp32/app/2.0.0.bin", "--select", "hardware=esp32", "--stages", "100", "--soak", "1s"], at: site.gw1, key: "admin-a")
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(Site.id(in: out))
        #expect(waitUntil(timeout: 20) { site.mode(id, at: site.gw2) == "awaiting approval" }, "the plan reaches the other gateway")
        // The devices ask once before the plan is approved: a plan's device set holds the devices
        // first seen before its stage began (rollouts.md), so they belong to it whatever the
        // moment the stage mark is written (asking only after "running" raced it).
        _ = try site.fleet(base: "24:0a:c4:73:00:00", count: 2, version: "1.0.0", deadline: 1)
        #expect(try site.rollout(["approve", id], at: site.gw2, key: "admin-b").0 == 0)
        #expect(waitUntil(timeout: 20) { site.mode(id, at: site.gw2) == "running" })
        let pending = try site.fleet(base: "24:0a:c4:73:00:00", count: 2, version: "1.0.0", deadline: 3)
        #expect(pending.0 != 0, "devices nobody admitted were updated: \(pending.1.suffix(800))")
        let (listed, devices, _) = try run(["devices", "--data-dir", site.dir.file("d2")])
        #expect(listed == 0 && devices.contains("pending admission"), "\(devices)")

        let (accepted, acceptOut, acceptErr) = try run(["device", "accept", "24:0a:c4:73:00:00,24:0a:c4:73:00:01", "--data-dir", site.dir.file("d2")])
        #expect(accepted == 0 && acceptOut.contains("accepted"), "\(acceptOut) \(acceptErr)")
        let (unknown, _, unknownErr) = try run(["device", "accept", "24:0a:c4:73:99:99", "--data-dir", site.dir.file("d2")])
        #expect(unknown != 0 && unknownErr.contains("no device 24:0a:c4:73:99:99"), "\(unknownErr)")
        let updated = try site.fleet(base: "24:0a:c4:73:00:00", count: 2, version: "1.0.0", deadline: 30)
        let after =
            updated.0 == 0
            ? "" : ((try? run(["devices", "--data-dir", site.dir.file("d2")]))?.1 ?? "") + "\n\(String(describing: site.status(id, at: site.gw2)))"
        #expect(updated.0 == 0, "accepted devices update: \(updated.1.suffix(800))\n\(after)")
    }
}
