import Foundation
import Testing

/// hawkBit DDI (issue 21) with the real client: Debian's SWUpdate (suricatta, hawkBit) polls a
/// gateway on loopback inside signed staged rollouts, downloads a signed .swu through a relay
/// that cuts the first download mid-artifact (SWUpdate resumes with Range), installs it with
/// the rawfile handler into a temporary directory, reports, and confirms after its "reboot"
/// (`-c 2`); a .swu whose install fails halts the next rollout.
@Suite("hawkBit DDI with SWUpdate", .serialized)
struct DDITests {
    static var swupdateMissing: Bool {
        !FileManager.default.isExecutableFile(atPath: "/usr/bin/swupdate") || !FileManager.default.isExecutableFile(atPath: "/usr/bin/cpio")
    }

    @discardableResult
    static func ok(_ arguments: [String]) throws -> String {
        let (status, out, err) = try run(arguments)
        #expect(status == 0, "\(arguments): \(out) \(err)")
        return out
    }

    static func tool(_ executable: String, _ arguments: [String]) throws {
        let (status, out, err) = try runProgram(executable, arguments, timeout: 60)
        guard status == 0 else { throw SWUError("\(executable) \(arguments.joined(separator: " ")): \(out) \(err)") }
    }

    struct SWUError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A signer (key and self-signed certificate; SWUpdate takes CMS signatures only).
    static func signer(in dir: TemporaryDirectory) throws -> (key: String, cert: String) {
        let (key, cert) = (dir.file("swu-key.pem"), dir.file("swu-cert.pem"))
        try tool(
            "/usr/bin/openssl",
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-keyout", key, "-out", cert, "-subj", "/O=otamesh/CN=swu-signer"])
        return (key, cert)
    }

    /// A signed .swu: one rawfile payload installed at `destination`, or (failing) a shell script
    /// that exits 1 before anything is installed.
    static func swu(
        _ name: String, in dir: TemporaryDirectory, signer: (key: String, cert: String), payload: [UInt8], destination: String, failing: Bool
    )
        throws -> String
    {
        let work = dir.file("swu-\(name)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let file = failing ? "fail.sh" : "payload.bin"
        let contents = failing ? Array("#!/bin/sh\necho \"otamesh test: refusing to install\" >&2\nexit 1\n".utf8) : payload
        FileManager.default.createFile(atPath: "\(work)/\(file)", contents: Data(contents))
        let sha = sha256Hex(contents)
        let entry =
            failing
            ? "scripts: ( { filename = \"fail.sh\"; type = \"shellscript\"; sha256 = \"\(sha)\"; } );"
            : "files: ( { filename = \"payload.bin\"; path = \"\(destination)\"; type = \"rawfile\"; sha256 = \"\(sha)\"; properties = { create-destination = \"true\"; }; } );"
        let description = "software =\n{\n\tversion = \"\(name)\";\n\thardware-compatibility: [ \"1.0\" ];\n\t\(entry)\n}\n"
        try description.write(toFile: "\(work)/sw-description", atomically: true, encoding: .utf8)
        try tool(
            "/usr/bin/openssl",
            [
                "cms", "-sign", "-in", "\(work)/sw-description", "-out", "\(work)/sw-description.sig", "-signer", signer.cert, "-inkey", signer.key,
                "-outform", "DER", "-nosmimecap", "-binary",
            ])
        let output = dir.file("\(name).swu")
        try tool("/bin/sh", ["-c", "cd '\(work)' && printf '%s\\n' sw-description sw-description.sig \(file) | cpio -o -H crc --quiet > '\(output)'"])
        return output
    }

    /// SWUpdate as the device runs it, sockets in its own TMPDIR. It forks helpers; Foundation
    /// starts it as a process group leader, so the group is signalled.
    final class Client {
        let child: Child
        init(gateway: String, id: String, token: String, cert: String, tmp: String, confirm: Bool = false) throws {
            try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
            let suricatta = "-t DEFAULT -u \(gateway) -i \(id) -k \(token) -r 10 -w 1" + (confirm ? " -c 2" : "")
            child = try Child("/usr/bin/swupdate", ["-v", "-k", cert, "-H", "otamesh:1.0", "-u", suricatta], environment: ["TMPDIR": tmp])
        }
        var log: String { child.stdout.text + child.stderr.text }
        /// SIGTERM to the group; its helpers outlive the main process otherwise, holding the
        /// output pipes, so the group gets SIGKILL once the main process is gone (or after 5 s).
        func stop() {
            kill(-child.pid, SIGTERM)
            _ = waitUntil(timeout: 5) { !child.process.isRunning || Self.isZombie(child.pid) }
            kill(-child.pid, SIGKILL)
            child.wait(timeout: 10)
        }

        static func isZombie(_ pid: Int32) -> Bool {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        }
    }

    @Test(
        "SWUpdate in a rollout: a download cut mid-artifact resumes with Range, installs, counts only after the confirmation that follows its restart; a failing .swu halts the next rollout",
        .enabled(if: !swupdateMissing, "needs swupdate and cpio (make deps installs them)"))
    func swupdateRollout() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let signer = try Self.signer(in: dir)
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let installed = dir.file("rootfs/opt/door/firmware.bin")
        let good = try Self.swu("2.0.0", in: dir, signer: signer, payload: payload, destination: installed, failing: false)
        let bad = try Self.swu("3.0.0", in: dir, signer: signer, payload: [], destination: installed, failing: true)
        _ = try PublishedRelease(
            in: dir,
            images: [
                .init(path: "linux/door/2.0.0.swu", file: good, version: "2.0.0", hardware: "door"),
                .init(path: "linux/door/3.0.0.swu", file: bad, version: "3.0.0", hardware: "door"),
            ], importingInto: [data])
        let site = try RolloutSite(dir: dir, data: data)
        let gateway = site.gateway
        defer { gateway.stop() }

        let token = try site.add("door-1", hardware: "door")
        func start(_ target: String) throws -> String { try site.start(target, select: "hardware=door") }
        func status(_ id: String) -> String { site.status(id) }

        // The device reaches the gateway through a relay that cuts the first download at 1 MiB.
        let port = String(gateway.device.split(separator: ":").last ?? "")
        let proxy = try Child(
            "/usr/bin/env", ["python3", Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/ddi/cut_proxy.py").path, port, "\(1 << 20)"])
        defer { proxy.signal(SIGKILL) }
        #expect(waitUntil(timeout: 10) { proxy.stdout.text.contains("listening ") })
        let relay = "http://127.0.0.1:" + (proxy.stdout.lines.first?.split(separator: " ").last.map(String.init) ?? "")

        let first = try start("linux/door/2.0.0.swu")
        let device = try Client(gateway: relay, id: "door-1", token: token, cert: signer.cert, tmp: dir.file("tmp1"))
        let installedWhole = waitUntil(timeout: 90) {
            FileManager.default.contents(atPath: installed).map { [UInt8]($0) == payload } ?? false && device.log.contains("SWUPDATE successful")
        }
        #expect(installedWhole, "\(device.log.suffix(3000)) \(proxy.stdout.text)")
        #expect(proxy.stdout.text.contains("cut GET /v1/targets/linux/door/2.0.0.swu"), "\(proxy.stdout.text)")
        #expect(proxy.stdout.text.contains("range GET /v1/targets/linux/door/2.0.0.swu"), "resumed with Range: \(proxy.stdout.text)")
        // Installed but not confirmed: the rollout waits for the device's word after its reboot.
        #expect(!status(first).contains("completed"), "\(status(first))")
        device.stop()

        let rebooted = try Client(gateway: relay, id: "door-1", token: token, cert: signer.cert, tmp: dir.file("tmp2"), confirm: true)
        var seen = ""
        let confirmed = waitUntil(timeout: 60) {
            seen = status(first)
            return seen.contains("completed") && seen.contains("door-1") && seen.contains("2.0.0")
        }
        rebooted.stop()
        #expect(confirmed, "\(seen) \(rebooted.log.suffix(2000))")
        let listed = try Self.ok(["devices", "--data-dir", data])
        #expect(listed.contains("door-1") && listed.contains("ddi"), "\(listed)")

        // 3.0.0's install fails on the device: it reports closed/failure, the rollout halts.
        let second = try start("linux/door/3.0.0.swu")
        let failing = try Client(gateway: relay, id: "door-1", token: token, cert: signer.cert, tmp: dir.file("tmp3"))
        let halted = waitUntil(timeout: 60) {
            seen = status(second)
            return seen.contains("halted")
        }
        failing.stop()
        #expect(halted && seen.contains("device reported"), "\(seen) \(failing.log.suffix(2000))")
        #expect(FileManager.default.contents(atPath: installed).map { [UInt8]($0) == payload } == true, "the failed update changed nothing")
    }

    /// A gateway with a one-admin site (rollouts signed by `admin-a`), DDI polls every second.
    struct RolloutSite {
        let gateway: Gateway
        let data: String
        let keys: String

        init(dir: TemporaryDirectory, data: String) throws {
            self.data = data
            keys = dir.file("admins")
            let signing = try SignedSite(site: "ddi-site", admins: ["admin-a"], threshold: 1)
            try signing.writeKeys(to: keys)
            try signing.writeTrustFile(to: dir.file("site-trust.json"))
            gateway = try Gateway.start(
                data: data,
                extra: ["--node-name", "gw1", "--site-trust", dir.file("site-trust.json"), "--ddi-poll-interval", "1s", "--ddi-active-poll-interval", "1s"])
        }

        /// Registers a DDI device; its TargetToken.
        func add(_ id: String, hardware: String) throws -> String {
            let added = try DDITests.ok(["device", "add", "--data-dir", data, "--family", "ddi", "--id", id, "--hardware", hardware])
            return try #require(added.split(separator: " ").first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) }.map(String.init), "\(added)")
        }

        /// Starts a one-stage rollout; its id.
        func start(_ target: String, select: String, extra: [String] = []) throws -> String {
            let (status, out, err) = try run(
                [
                    "rollout", "start", "--target", target, "--select", select, "--stages", "100", "--soak", "1s", "--max-failures", "0",
                    "--min-finished", "1", "--admin", gateway.admin, "--key", "\(keys)/admin-a.pem",
                ] + extra + gateway.tokenArguments, timeout: 30)
            #expect(status == 0, "\(out) \(err)")
            return try #require(RolloutTests.Site.id(in: out), "no rollout id in: \(out)")
        }

        func control(_ arguments: [String]) throws {
            let (status, out, err) = try run(["rollout"] + arguments + ["--admin", gateway.admin] + gateway.tokenArguments, timeout: 30)
            #expect(status == 0, "\(arguments): \(out) \(err)")
        }

        func status(_ id: String) -> String {
            (try? run(["rollout", "status", id, "--devices", "--admin", gateway.admin] + gateway.tokenArguments))?.1 ?? ""
        }

        /// What the gateway last answered the device (`otamesh devices --json`).
        func lastAnswer(_ id: String) -> String {
            let lines = (try? run(["devices", "--data-dir", data, "--json"]))?.1.split(separator: "\n") ?? []
            for line in lines {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["id"] as? String == id else { continue }
                return object["lastAnswer"] as? String ?? ""
            }
            return ""
        }
    }

    static var raucHawkbitMissing: Bool {
        ((try? runProgram("/usr/bin/env", ["python3", "-c", "import aiohttp, rauc_hawkbit.ddi.client"], timeout: 60))?.0 ?? 1) != 0
    }

    @Test(
        "a second client (the rauc-hawkbit library): configData sets the device's hardware, the artifact's hashes and size match what it downloads, closed/success installs the assignment",
        .enabled(if: !raucHawkbitMissing, "needs aiohttp and rauc-hawkbit (make deps installs them)"))
    func raucHawkbitClient() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        var generator = SystemRandomNumberGenerator()
        let bundle = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        FileManager.default.createFile(atPath: dir.file("hvac.raucb"), contents: Data(bundle))
        _ = try PublishedRelease(
            in: dir, images: [.init(path: "linux/hvac/2.0.raucb", file: dir.file("hvac.raucb"), version: "2.0", hardware: "hvac")], importingInto: [data])
        let gateway = try Gateway.start(data: data, extra: ["--ddi-poll-interval", "10m", "--ddi-active-poll-interval", "15s"])
        defer { gateway.stop() }
        let added = try Self.ok(["device", "add", "--data-dir", data, "--family", "ddi", "--id", "hvac-3"])
        let token = try #require(added.split(separator: " ").first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) }.map(String.init), "\(added)")
        try Self.ok(["device", "assign", "--data-dir", data, "hvac-3", "linux/hvac/2.0.raucb"])
        let host = gateway.device.replacingOccurrences(of: "http://", with: "")
        let script = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/ddi/rauc_hawkbit_client.py").path
        let (status, out, err) = try runProgram("/usr/bin/env", ["python3", script, host, token, "hvac-3", dir.file("bundle.raucb")], timeout: 60)
        #expect(status == 0, "\(out) \(err)")
        let steps = out.split(separator: "\n").map(String.init)
        #expect(steps.first?.contains(#""links": ["configData", "deploymentBase"]"#) == true && steps.first?.contains("00:00:15") == true, "\(steps)")
        #expect(steps.contains { $0.contains(#""step": "downloaded""#) && $0.contains(#""ok": true"#) && $0.contains(#""size": 300000"#) }, "\(steps)")
        #expect(steps.contains { $0.contains(#""filename": "2.0.raucb""#) && $0.contains(#""update": "forced""#) && $0.contains(#""version": "2.0""#) })
        // Installed, attributes known: nothing more to do, the idle interval.
        #expect(steps.last?.contains(#""links": []"#) == true && steps.last?.contains("00:10:00") == true, "\(steps)")
        var listed = ""
        #expect(
            waitUntil(timeout: 10) {
                listed = (try? run(["devices", "--data-dir", data]))?.1 ?? ""
                return listed.contains("hvac-3  ddi  hvac  2.0")
            }, "\(listed)")
    }

    @Test("without its TargetToken, or with another device's, a DDI client gets 401 and nothing else")
    func authentication() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }
        let added = try Self.ok(["device", "add", "--data-dir", data, "--family", "ddi", "--id", "door-1"])
        let token = try #require(added.split(separator: " ").first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) }.map(String.init), "\(added)")
        try Self.ok(["device", "add", "--data-dir", data, "--family", "ddi", "--id", "door-2"])
        func poll(_ id: String, _ header: String?) throws -> String {
            var arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(gateway.device)/DEFAULT/controller/v1/\(id)"]
            if let header { arguments += ["-H", "Authorization: \(header)"] }
            return try runProgram("/usr/bin/curl", arguments, timeout: 20).1
        }
        #expect(try poll("door-1", nil) == "401")
        #expect(try poll("door-1", "TargetToken wrong") == "401")
        #expect(try poll("door-2", "TargetToken \(token)") == "401")
        #expect(try poll("door-1", "TargetToken \(token)") == "200")
        #expect(try poll("door-9", "TargetToken \(token)") == "401", "an unknown device is not enrolled by default")
        #expect(try poll("door-1", "Bearer \(token)") == "401")
        let again = try Self.ok(["device", "add", "--data-dir", data, "--family", "ddi", "--id", "door-1"])
        #expect(again.contains("kept") && !again.contains(token), "\(again)")
    }
}
