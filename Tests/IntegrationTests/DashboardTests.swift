import Foundation
import OTAMeshTestSupport
import Testing

/// The site dashboard in headless Chromium (Tests/Browser/dashboard_flow.py): three gateways on
/// loopback, two site admins, devicesim devices updating while the page watches.
@Suite("site dashboard in a browser", .serialized)
struct DashboardTests {
    static var browserMissing: String? {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where !FileManager.default.isExecutableFile(atPath: tool) { return tool }
        let probe = try? runProgram("/usr/bin/env", ["python3", "-c", "import selenium"], timeout: 30)
        return probe?.0 == 0 ? nil : "python3 selenium"
    }

    @Test(
        "sign in, see three gateways, a hostile device name as text; start a rollout signed in the page, approve it in a second browser (the CLI's envelope, byte for byte), watch it advance live; a failing release halts; retry-failed from two browsers; a halt from the page; reports; sign in with a key file alone; the read-only token cannot act; a lost connection is said, and its return",
        .enabled(if: browserMissing == nil, "needs chromium, chromium-driver and selenium (make deps installs them)"))
    func flow() throws {
        let dir = try TemporaryDirectory()
        let keys = dir.file("admins")
        let images = try ["2.0.0", "3.0.0"].map {
            try PublishedRelease.Image.esp32("esp32/app/\($0).bin", version: $0, size: 120000, file: dir.file("esp32-\($0).bin"))
        }
        let data = (1...3).map { dir.file("d\($0)") }
        _ = try PublishedRelease(in: dir, images: images, importingInto: data)
        try writeSiteKeyring(to: dir.file("site.keyring"), site: "dashboard-site")
        let signing = try SignedSite(site: "dashboard-site", admins: ["admin-a", "admin-b"], threshold: 2)
        try signing.writeKeys(to: keys)
        try signing.writeTrustFile(to: dir.file("site-trust.json"))
        let common = ["--site-keyring", dir.file("site.keyring"), "--site-trust", dir.file("site-trust.json")]
        let gw1 = try Gateway.start(data: data[0], extra: ["--node-name", "gw1"] + common)
        defer { gw1.stop() }
        let gw2 = try Gateway.start(data: data[1], extra: ["--node-name", "gw2", "--join", gw1.gossip!] + common)
        defer { gw2.stop() }
        let gw3 = try Gateway.start(data: data[2], extra: ["--node-name", "gw3", "--join", gw1.gossip!] + common)
        defer { gw3.stop() }
        let shots = ProcessInfo.processInfo.environment["DASHBOARD_SHOTS"]
        let config: [String: Any] = [
            "gateways": zip(["gw1", "gw2", "gw3"], [gw1, gw2, gw3]).map { name, gateway in
                [
                    "name": name, "admin": gateway.admin, "device": gateway.device, "token": gateway.token, "readToken": gateway.readToken,
                    "tokenFile": gateway.tokenFile, "pid": Int(gateway.child.process.processIdentifier),
                ]
            },
            "otamesh": Binaries.otamesh, "devicesim": Binaries.devicesim, "keys": keys, "shots": shots as Any, "work": dir.path,
        ]
        let argument = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        let script = Binaries.packageRoot.appendingPathComponent("Tests/Browser/dashboard_flow.py").path
        let (status, out, err) = try runProgram("/usr/bin/env", ["python3", script, argument], timeout: 600)
        #expect(status == 0, "\(err.suffix(3000)) \(out.suffix(1500))")
        #expect(out.contains("dashboard flow passed"))
        // The envelope the page sent verifies as the CLI's does, against the site trust file.
        let (verified, verifyOut, verifyErr) = try run(["keys", "verify-command", "--trust", dir.file("site-trust.json"), dir.file("page-envelope.json")])
        #expect(verified == 0, "\(verifyOut) \(verifyErr)")
        if let measure = out.split(separator: "\n").first(where: { $0.hasPrefix("measure: ") }) { print(measure) }

        // Each gateway announces the image bytes it moved: gw2 served its devices, and gw1 sees it.
        var served: Int64 = 0
        let announced = waitUntil(timeout: 45) {
            guard
                let (code, body, _) = try? runProgram("/usr/bin/curl", ["-s", "-H", "Authorization: Bearer \(gw1.readToken)", "\(gw1.admin)/api/v1/members"]),
                code == 0, let view = try? JSONDecoder().decode(MeshViewProbe.self, from: Data(body.utf8)),
                let gw2 = view.members.first(where: { $0.name == "gw2" })
            else { return false }
            served = gw2.traffic?.servedToDevices ?? 0
            return served >= 4 * 120_000
        }
        #expect(announced, "gw2's bytes served to devices, as gw1 sees them: \(served)")

        // The same reports from the CLI, with the read-only token of another gateway.
        let read = ["--admin", gw3.admin, "--token-file", gw3.readTokenFile]
        let (fleetStatus, fleet, fleetErr) = try run(["report", "fleet", "--format", "csv"] + read)
        #expect(fleetStatus == 0, "\(fleetErr)")
        #expect(fleet.hasPrefix("device,gateway,family,hardware,variant,version,last_seen,last_answer,tags,address,segment\r\n"), "\(fleet.prefix(300))")
        // The hostile id is one quoted CSV field (it holds a quote), kept as data.
        #expect(fleet.contains("\"<img src=x onerror=\"\"window.__xss=1\"\">\",gw2,generic"), "\(fleet)")
        let ids = out.split(separator: "\n").first { $0.hasPrefix("rollouts: ") }?.split(separator: " ").dropFirst().map(String.init) ?? []
        let id = try #require(ids.first, "\(out)")
        let file = dir.file("rollout.json")
        let (reportStatus, _, reportErr) = try run(["report", "rollout", id, "--output", file] + read)
        #expect(reportStatus == 0 && reportErr.contains("wrote \(file)"), "\(reportErr)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
        let rollout = report?["rollout"] as? [String: Any]
        #expect(rollout?["id"] as? String == id && (rollout?["outcomes"] as? [Any])?.count == 4, "\(String(describing: report))")
        let (badStatus, _, badErr) = try run(["report", "rollout", "../etc"] + read)
        #expect(badStatus != 0 && badErr.contains("not a rollout id"), "\(badErr)")
        let (unknownStatus, _, unknownErr) = try run(["report", "rollout", "r-000000000000"] + read)
        #expect(unknownStatus == 1 && unknownErr.contains("not known on this gateway"), "\(unknownErr)")
    }
}

extension DashboardTests {
    static var httpsMissing: String? {
        browserMissing ?? (FileManager.default.isExecutableFile(atPath: "/usr/bin/certutil") ? nil : "certutil (libnss3-tools)")
    }

    @Test(
        "off loopback: over HTTPS with the site CA installed in the browser, an ECDSA P-256 admin key signs in and starts a rollout that the CLI approves; without the CA no page loads; over plain HTTP by a LAN name the page offers no key signing and says why",
        .enabled(if: httpsMissing == nil, "needs chromium, chromium-driver, selenium and certutil (make deps installs them)"))
    func https() throws {
        let dir = try TemporaryDirectory()
        let keys = dir.file("admins")
        let image = try PublishedRelease.Image.esp32("esp32/app/2.0.0.bin", version: "2.0.0", size: 40000, file: dir.file("esp32.bin"))
        let data = [dir.file("d1"), dir.file("d2")]
        _ = try PublishedRelease(in: dir, images: [image], importingInto: [data[0]])
        try writeSiteKeyring(to: dir.file("site.keyring"), site: "https-site")
        let signing = try SignedSite(site: "https-site", admins: ["admin-a", "admin-e"], threshold: 2, keyTypes: ["admin-e": .ecdsa])
        try signing.writeKeys(to: keys)
        try signing.writeTrustFile(to: dir.file("site-trust.json"))
        let common = ["--site-keyring", dir.file("site.keyring"), "--site-trust", dir.file("site-trust.json")]
        // The gateway's certificate names the LAN name the browser uses; the browser resolves
        // it to 127.0.0.1 (nothing leaves this machine).
        let issued = try run(["keys", "site-ca", "--data-dir", data[0], "--name", "gw-https.test", "--address", "127.0.0.1"])
        #expect(issued.0 == 0, "\(issued)")
        let secure = try Gateway.start(data: data[0], extra: ["--node-name", "gw-https", "--admin-tls", "on"] + common)
        defer { secure.stop() }
        let plain = try Gateway.start(data: data[1], extra: ["--node-name", "gw-plain"] + common)
        defer { plain.stop() }
        // The admin's browser trusts the site CA: an NSS database in its HOME, as Chromium's
        // certificate manager writes it on Linux.
        let trusting = dir.file("home-trusting")
        let database = "sql:\(trusting)/.pki/nssdb"
        try FileManager.default.createDirectory(atPath: "\(trusting)/.pki/nssdb", withIntermediateDirectories: true)
        for arguments in [["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", "otamesh site CA", "-i", "\(data[0])/keys/site-ca.pem"]] {
            let made = try runProgram("/usr/bin/certutil", ["-d", database] + arguments)
            #expect(made.0 == 0, "certutil \(arguments): \(made)")
        }
        let empty = dir.file("home-empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        func port(_ url: String) -> String { String(url.split(separator: ":").last ?? "") }
        let config: [String: Any] = [
            "https": ["name": "gw-https", "admin": "https://gw-https.test:\(port(secure.admin))"],
            "plain": ["name": "gw-plain", "admin": "http://gw-plain.test:\(port(plain.admin))", "token": plain.token],
            "trustingHome": trusting, "emptyHome": empty, "keys": keys,
        ]
        let argument = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        let script = Binaries.packageRoot.appendingPathComponent("Tests/Browser/dashboard_https.py").path
        let (status, out, err) = try runProgram("/usr/bin/env", ["python3", script, argument], timeout: 300)
        #expect(status == 0 && out.contains("dashboard https passed"), "\(err.suffix(3000)) \(out.suffix(1500))")

        // The plan the browser signed with ECDSA counts: the CLI adds the second signature and
        // the gateway runs it.
        let id = try #require(out.split(separator: "\n").first { $0.hasPrefix("started: ") }.map { String($0.dropFirst(9)) }, "\(out)")
        let remote = ["--admin", AdminTLSTests.loopback(secure.admin), "--ca", "\(data[0])/keys/site-ca.pem"] + secure.tokenArguments
        let approved = try run(["rollout", "approve", id, "--key", "\(keys)/admin-a.pem"] + remote)
        #expect(approved.0 == 0, "\(approved)")
        let running = waitUntil(timeout: 20) { ((try? run(["rollout", "status", id] + remote))?.1 ?? "").contains("running") }
        #expect(running, "\((try? run(["rollout", "status", id] + remote)).map { "\($0)" } ?? "")")
    }
}

/// The part of `GET /api/v1/members` the test reads.
struct MeshViewProbe: Decodable {
    struct Member: Decodable {
        struct Traffic: Decodable { var servedToDevices: Int64 }
        var name: String
        var traffic: Traffic?
    }
    var members: [Member]
}
