import Foundation
import Testing

/// hawkBit DDI (issue 21) inside the rollout's controls, with real clients: the maintenance
/// window (SWUpdate) and a halt's cancelation (the rauc-hawkbit library).
extension DDITests {
    /// A daily window that opens at the next minute boundary at least 25 s away (time for the
    /// device to see the closed window first), for an hour: `HH:MM-HH:MM` and when it opens.
    static func windowOpeningSoon(now: Date = Date()) -> (text: String, opens: Date) {
        let seconds = Int(now.timeIntervalSince1970)
        var start = (seconds / 60 + 1) * 60
        if start - seconds < 25 { start += 60 }
        func hhmm(_ t: Int) -> String { String(format: "%02d:%02d", t / 3600 % 24, t / 60 % 60) }
        return ("\(hhmm(start))-\(hhmm(start + 3600))", Date(timeIntervalSince1970: TimeInterval(start)))
    }

    @Test(
        "SWUpdate outside the maintenance window: update skip, its skip-close counts for nothing and the action is not linked again; when the window opens it installs",
        .enabled(if: !swupdateMissing, "needs swupdate and cpio (make deps installs them)"))
    func swupdateWindow() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let signer = try Self.signer(in: dir)
        let payload = Array("door firmware 2.1.0\n".utf8) + (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let installed = dir.file("rootfs/opt/door/firmware.bin")
        let image = try Self.swu("2.1.0", in: dir, signer: signer, payload: payload, destination: installed, failing: false)
        _ = try PublishedRelease(in: dir, images: [.init(path: "linux/door/2.1.0.swu", file: image, version: "2.1.0", hardware: "door")], importingInto: [data])
        let site = try RolloutSite(dir: dir, data: data)
        defer { site.gateway.stop() }
        let token = try site.add("door-2", hardware: "door")

        let window = Self.windowOpeningSoon()
        let id = try site.start("linux/door/2.1.0.swu", select: "hardware=door", extra: ["--window", window.text])
        let device = try Client(gateway: site.gateway.device, id: "door-2", token: token, cert: signer.cert, tmp: dir.file("tmp"))
        defer { device.stop() }
        // Told to skip, SWUpdate closes the action as a success without installing; the
        // gateway counts nothing and stops linking it until the window opens.
        var answer = ""
        let skipped = waitUntil(timeout: 20) {
            answer = site.lastAnswer("door-2")
            return answer.contains("closed it without installing")
        }
        #expect(skipped, "\(answer) \(device.log.suffix(2000))")
        #expect(Date() < window.opens, "the window opened before the device was seen skipping: the check above proves nothing")
        #expect(!FileManager.default.fileExists(atPath: installed))
        let before = site.status(id)
        #expect(before.contains("(0 succeeded, 0 failed)") && before.contains("no device attempts yet"), "\(before)")

        let installedInWindow = waitUntil(timeout: window.opens.timeIntervalSinceNow + 60) {
            FileManager.default.contents(atPath: installed).map { [UInt8]($0) == payload } ?? false && device.log.contains("SWUPDATE successful")
        }
        #expect(installedInWindow, "\(site.status(id)) \(device.log.suffix(3000))")
        #expect(Date() >= window.opens, "installed before the window opened")
    }

    @Test(
        "a halt cancels actions the devices have not started: one client accepts (nothing counts; on resume a new action installs), one rejects and goes on (its install counts)",
        .enabled(if: !raucHawkbitMissing, "needs aiohttp and rauc-hawkbit (make deps installs them)"))
    func haltCancels() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        FileManager.default.createFile(atPath: dir.file("hvac.raucb"), contents: Data((0..<250_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
        _ = try PublishedRelease(
            in: dir, images: [.init(path: "linux/hvac/3.0.raucb", file: dir.file("hvac.raucb"), version: "3.0", hardware: "hvac")], importingInto: [data])
        let site = try RolloutSite(dir: dir, data: data)
        defer { site.gateway.stop() }
        let tokens = try ["hvac-4", "hvac-5"].map { try site.add($0, hardware: "hvac") }
        let id = try site.start("linux/hvac/3.0.raucb", select: "hardware=hvac", extra: ["--concurrency", "10"])

        let script = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/ddi/rauc_hawkbit_cancel.py").path
        let host = site.gateway.device.replacingOccurrences(of: "http://", with: "")
        let accepting = try Child("/usr/bin/env", ["python3", script, host, tokens[0], "hvac-4", dir.file("a.raucb"), "accept", "90"])
        let rejecting = try Child("/usr/bin/env", ["python3", script, host, tokens[1], "hvac-5", dir.file("b.raucb"), "reject", "90"])
        defer { [accepting, rejecting].forEach { $0.signal(SIGKILL) } }
        #expect(waitUntil(timeout: 30) { accepting.stdout.text.contains("offered") && rejecting.stdout.text.contains("offered") })

        try site.control(["halt", id, "--reason", "test halt"])
        // hvac-4 stops and waits; hvac-5 refuses and installs the same action, which counts.
        #expect(waitUntil(timeout: 30) { accepting.stdout.text.contains(#""event": "idle""#) }, "\(accepting.stdout.text) \(accepting.stderr.text)")
        #expect(rejecting.wait(timeout: 30) == 0, "\(rejecting.stdout.text) \(rejecting.stderr.text)")
        let refused = rejecting.stdout.text
        #expect(refused.contains(#""answer": "rejected""#) && refused.contains(#""event": "installed""#), "\(refused)")
        let first = Self.field("action", of: "offered", in: refused)
        #expect(first != nil && Self.field("action", of: "installed", in: refused) == first, "the refusing device installs the action it had: \(refused)")
        var seen = ""
        #expect(
            waitUntil(timeout: 20) {
                seen = site.status(id)
                return seen.contains("halted") && seen.contains("hvac-5") && seen.contains("succeeded")
            }, "\(seen)")
        #expect(!accepting.stdout.text.contains("installed"), "nothing is installed while halted: \(accepting.stdout.text)")

        try site.control(["resume", id, "--key", "\(site.keys)/admin-a.pem"])
        #expect(accepting.wait(timeout: 60) == 0, "\(accepting.stdout.text) \(accepting.stderr.text)")
        let accepted = accepting.stdout.text
        let offered = Self.field("action", of: "offered", in: accepted)
        let again = Self.field("action", of: "installed", in: accepted)
        #expect(offered != nil && again != nil && offered != again, "a canceled action comes back as a new one: \(accepted)")
        #expect(
            waitUntil(timeout: 30) {
                seen = site.status(id)
                return seen.contains("completed")
            }, "\(seen)")
    }

    /// A field of the first JSON line with `"event": event` in a client's output.
    static func field(_ name: String, of event: String, in output: String) -> String? {
        for line in output.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["event"] as? String == event else {
                continue
            }
            return object[name] as? String
        }
        return nil
    }
}
