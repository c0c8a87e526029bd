import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh lab up|run` for real (root only): gateways, an origin and devices in network
/// namespaces. Checks isolation, the per-namespace daemons, discovery through Avahi, the
/// upstream fetch and the peer fetch behind it, teardown — by SIGTERM, and by `lab down` after
/// the runner was SIGKILLed — and the scenarios of three-floors and mesh-faults.
@Suite("lab", .serialized)
struct LabTests {
    static let fixture = "\(Binaries.packageRoot.path)/Tests/Fixtures/esp/esp32.bin"
    static let namespaces = ["otl-it-sw", "otl-it-or", "otl-it-g1", "otl-it-g2", "otl-it-d2"]

    static func topology() -> String {
        """
        name: lab-itest
        short: it
        networks:
          backbone: { subnet: 10.77.0.0/24 }
          uplink: { subnet: 10.77.100.0/24 }
          floor: { subnet: 10.77.1.0/24, rate: 10mbit, delay: 5ms, loss: 1 }
        origin:
          network: uplink
          releases:
            - { path: esp32/app/1.0.0.bin, image: \(fixture) }
        gateways:
          itgw1: { networks: [backbone, uplink], upstream: true }
          itgw2: { networks: [backbone, floor] }
        devices:
          - { name: itdev, network: floor, gateway: itgw2, family: esp32-httpupdate }
        """
    }

    /// Why this machine cannot run the test, or nil.
    static func missingPrerequisite() -> String? {
        guard TestEnvironment.isRoot else { return "not root" }
        for tool in [
            "/usr/sbin/ip", "/usr/sbin/tc", "/usr/sbin/nft", "/usr/bin/dbus-daemon", "/usr/sbin/avahi-daemon", "/usr/bin/avahi-browse",
            "/usr/bin/curl", "/usr/bin/setpriv", "/usr/bin/unshare",
        ]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (make deps)"
        }
        return FileManager.default.isExecutableFile(atPath: Binaries.devicesim) ? nil : "\(Binaries.devicesim) is not built"
    }

    /// curl's `-H @FILE` with a lab gateway's read-only admin API token (the `/api/v1` routes need one).
    static func readToken(_ state: String, _ gateway: String) -> [String] {
        let token = Gateway.readToken("\(state)/gw/\(gateway)/data/keys/read.token")
        let header = "\(state)/\(gateway)-read.header"
        FileManager.default.createFile(atPath: header, contents: Data("Authorization: Bearer \(token)\n".utf8), attributes: [.posixPermissions: 0o600])
        return ["-H", "@\(header)"]
    }

    static func sh(_ argv: [String], timeout: Double = 20) -> (Int32, String) {
        guard let (status, out, err) = try? runProgram("/usr/bin/env", argv, timeout: timeout) else { return (-1, "") }
        return (status, out + err)
    }

    static func labNamespaces(prefix: String = "otl-it-") -> [String] {
        sh(["ip", "netns", "list"]).1.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(prefix) }
    }

    static func pids(in namespaces: [String]) -> [Int32] {
        namespaces.flatMap { sh(["ip", "netns", "pids", $0]).1.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) } }
    }

    /// Alive and not a zombie.
    static func alive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    /// Processes whose command line mentions the lab's state directory.
    static func processes(mentioning state: String) -> [String] {
        listing("/proc").filter { Int32($0) != nil && Int32($0) != getpid() }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), alive(Int32(pid)!) else { return nil }
            let line = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            return line.contains(state) ? "\(pid): \(line)" : nil
        }
    }

    static func up(_ topology: String, state: String) throws -> Child {
        let runner = try Child(Binaries.otamesh, ["lab", "up", topology, "--state", state])
        let ready = waitUntil(timeout: 240) { runner.stdout.text.contains("is up (Ctrl-C") || !runner.process.isRunning }
        #expect(ready && runner.process.isRunning, "lab up: \(runner.stdout.text)\n\(runner.stderr.text)")
        return runner
    }

    @Test(
        "two gateways and an origin in namespaces; torn down by SIGTERM and by lab down after a crash",
        .enabled(if: LabTests.missingPrerequisite() == nil, "needs root, ip netns, avahi-daemon and dbus (make deps installs them)"))
    func lab() throws {
        let dir = try TemporaryDirectory()
        let topology = dir.file("itest.yaml")
        try Self.topology().write(toFile: topology, atomically: true, encoding: .utf8)
        let state = dir.file("state")
        _ = Self.sh([Binaries.otamesh, "lab", "down", topology, "--state", state], timeout: 120)
        #expect(Self.labNamespaces().isEmpty)
        let hostLinks = Self.sh(["ip", "-o", "link", "show"]).1.split(separator: "\n").map { $0.split(separator: ":").dropFirst().first ?? "" }

        let runner = try Self.up(topology, state: state)
        defer {
            runner.signal(SIGKILL)
            runner.wait(timeout: 30)
            _ = Self.sh([Binaries.otamesh, "lab", "down", topology, "--state", state], timeout: 120)
        }
        let out = runner.stdout.text
        #expect(out.contains("link shaping: "))
        // Shaping sits on the switch's ports: tbf + an nftables loss table, or netem.
        let qdiscs = Self.sh(["tc", "-n", "otl-it-sw", "qdisc", "show"]).1
        if out.contains("link shaping: tbf") {
            #expect(qdiscs.contains("tbf") && out.contains("warning: network floor: delay 5ms is not applied"))
            #expect(Self.sh(["ip", "netns", "exec", "otl-it-sw", "nft", "list", "tables"]).1.contains("netdev otlab_loss_2"))
        } else {
            #expect(qdiscs.contains("netem"))
        }
        #expect(Set(Self.labNamespaces()) == Set(Self.namespaces))
        // Nothing new in the host's namespace, and no lab namespace has a route off its subnets.
        let linksNow = Self.sh(["ip", "-o", "link", "show"]).1.split(separator: "\n").map { $0.split(separator: ":").dropFirst().first ?? "" }
        #expect(linksNow == hostLinks)
        for namespace in Self.namespaces {
            #expect(Self.sh(["ip", "-n", namespace, "route", "show", "default"]).1.isEmpty, "\(namespace) has a default route")
        }

        // Each gateway's admin API answers inside its namespace.
        for (namespace, name) in [("otl-it-g1", "itgw1"), ("otl-it-g2", "itgw2")] {
            let (status, body) = Self.sh(["ip", "netns", "exec", namespace, "curl", "-sf", "--max-time", "3", "http://127.0.0.1:8071/healthz"])
            #expect(status == 0 && body.contains("\"node\":\"\(name)\"") && body.contains("\"ok\""), "\(namespace): \(body)")
        }
        // The upstream gateway fetched the release from the origin.
        let digest = sha256Hex(try Data(contentsOf: URL(fileURLWithPath: Self.fixture)))
        #expect(
            waitUntil(timeout: 60) {
                Self.sh(
                    ["ip", "netns", "exec", "otl-it-g1", "curl", "-sf", "--max-time", "3"] + Self.readToken(state, "itgw1") + [
                        "http://127.0.0.1:8071/api/v1/cache"
                    ]
                ).1.contains(digest)
            }, "itgw1 did not fetch the release: \(Self.sh(["tail", "-5", "\(state)/logs/itgw1.log"]).1)")
        // itgw2 has no upstream and no static join: it found itgw1 through mDNS (Avahi in both
        // namespaces) and took the signed metadata and the image from it.
        #expect(
            waitUntil(timeout: 60) {
                Self.sh(
                    ["ip", "netns", "exec", "otl-it-g2", "curl", "-sf", "--max-time", "3"] + Self.readToken(state, "itgw2") + [
                        "http://127.0.0.1:8071/api/v1/cache"
                    ]
                ).1.contains(digest)
            }, "itgw2 did not get the release from its peer: \(Self.sh(["tail", "-8", "\(state)/logs/itgw2.log"]).1)")
        let members = Self.sh(
            ["ip", "netns", "exec", "otl-it-g2", "curl", "-sf", "--max-time", "3"] + Self.readToken(state, "itgw2") + ["http://127.0.0.1:8071/api/v1/members"]
        ).1
        #expect(members.contains("\"name\":\"itgw1\"") && members.contains("\"status\":\"alive\""), "\(members)")
        #expect((try? String(contentsOfFile: "\(state)/logs/itgw2.log", encoding: .utf8))?.contains("mDNS: discovered peer") == true)
        // Only the upstream gateway reaches the origin.
        let origin = "http://10.77.100.1:8080/metadata/1.root.json"
        #expect(Self.sh(["ip", "netns", "exec", "otl-it-g1", "curl", "-sf", "--max-time", "2", origin]).0 == 0)
        #expect(Self.sh(["ip", "netns", "exec", "otl-it-g2", "curl", "-sf", "--max-time", "2", origin]).0 != 0)
        // The device segment reaches its gateway and nothing else.
        #expect(Self.sh(["ip", "netns", "exec", "otl-it-d2", "curl", "-s", "--max-time", "3", "-o", "/dev/null", "http://10.77.1.12:8070/"]).0 == 0)
        #expect(Self.sh(["ip", "netns", "exec", "otl-it-d2", "curl", "-s", "--max-time", "2", "http://10.77.0.11:8071/"]).0 != 0)

        // An avahi-daemon on its own bus in each gateway namespace; each sees the other's host.
        for (namespace, own, other) in [("otl-it-g1", "itgw1", "itgw2"), ("otl-it-g2", "itgw2", "itgw1")] {
            let comms = Self.pids(in: [namespace]).compactMap { try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8) }
            #expect(comms.contains("avahi-daemon\n") && comms.contains("dbus-daemon\n"), "\(namespace): \(comms)")
            let bus = "DBUS_SYSTEM_BUS_ADDRESS=unix:path=\(state)/gw/\(own)/bus"
            var seen = ""
            let found = waitUntil(timeout: 30) {
                seen = Self.sh(["ip", "netns", "exec", namespace, "env", bus, "avahi-browse", "-atp"], timeout: 10).1
                return seen.contains(other)
            }
            #expect(found, "\(namespace) avahi-browse: \(seen)")
        }

        // A second run of the same lab is refused and leaves this one alone.
        let second = Self.sh([Binaries.otamesh, "lab", "up", topology, "--state", dir.file("state2")], timeout: 60)
        #expect(second.0 == 1 && second.1.contains("namespaces of this lab exist already"), "\(second.1)")
        #expect(Set(Self.labNamespaces()) == Set(Self.namespaces))
        #expect(Self.sh(["ip", "netns", "exec", "otl-it-g2", "curl", "-sf", "--max-time", "3", "http://127.0.0.1:8071/healthz"]).0 == 0)

        // SIGTERM: the runner tears everything down and exits 0.
        let labPids = Self.pids(in: Self.namespaces)
        #expect(labPids.count >= 8)
        runner.signal(SIGTERM)
        #expect(runner.wait(timeout: 90) == 0, "\(runner.stdout.text)\n\(runner.stderr.text)")
        #expect(runner.stdout.text.contains("torn down"))
        #expect(Self.labNamespaces().isEmpty)
        #expect(labPids.filter(Self.alive).isEmpty)
        #expect(Self.processes(mentioning: state).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(state)/lab.json"))

        // A crashed runner: its children die with it, the namespaces stay until `lab down`.
        let crashed = try Self.up(topology, state: state)
        let crashedPids = Self.pids(in: Self.namespaces)
        crashed.signal(SIGKILL)
        crashed.wait(timeout: 30)
        #expect(waitUntil(timeout: 15) { crashedPids.filter(Self.alive).isEmpty }, "children outlived the runner")
        #expect(!Self.labNamespaces().isEmpty)
        #expect(FileManager.default.fileExists(atPath: "\(state)/lab.json"))
        let (status, output) = Self.sh([Binaries.otamesh, "lab", "down", topology, "--state", state], timeout: 120)
        #expect(status == 0 && output.contains("namespaces removed"), "\(output)")
        #expect(Self.labNamespaces().isEmpty)
        #expect(Self.processes(mentioning: state).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "\(state)/lab.json"))
    }

    @Test("lab refuses to run without root, and rejects a bad topology with its key")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let bad = dir.file("bad.yaml")
        try "name: bad\nnetworks: { n1: { subnet: 10.77.0.0/24, colour: blue } }\ngateways: { g: { networks: [n1] } }\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let (status, _, errors) = try run(["lab", "up", bad])
        #expect(status == 2)
        if TestEnvironment.isRoot {
            #expect(errors.contains("bad.yaml:2: networks.n1.colour: unknown key 'colour'"), "\(errors)")
        } else {
            #expect(errors.contains("must run as root"))
        }
    }

    /// Runs `otamesh lab run` on a topology; (exit status, output, state directory).
    static func labRun(_ topology: String, timeout: Double) throws -> (Int32, String, String, TemporaryDirectory) {
        let dir = try TemporaryDirectory()
        let state = dir.file("state")
        let (status, out, err) = try runProgram(
            Binaries.otamesh, ["lab", "run", topology, "--state", state, "--timeout", "\(Int(timeout))"],
            timeout: timeout + 120)
        return (status, out + err, state, dir)
    }

    @Test(
        "three-floors: three gateways find each other through mDNS, end with the same images, detect a SIGKILL and rejoin",
        .enabled(if: LabTests.missingPrerequisite() == nil, "needs root, ip netns, avahi-daemon and dbus (make deps installs them)"))
    func threeFloors() throws {
        let (status, output, state, directory) = try Self.labRun("\(Binaries.packageRoot.path)/Topologies/three-floors.yaml", timeout: 300)
        #expect(status == 0 && output.contains("5/5 steps passed"), "\(output)")
        let gw2 = (try? String(contentsOfFile: "\(state)/logs/gw2.log", encoding: .utf8)) ?? ""
        #expect(gw2.contains("mDNS: discovered peer") && gw2.contains("image fetched from a peer"), "\(gw2.suffix(2_000))")
        #expect(Self.labNamespaces(prefix: "otl-tf-").isEmpty)
        withExtendedLifetime(directory) {}
    }

    @Test(
        "mesh-faults: a peer fetch over a slow link survives two SIGKILLs, a partition heals, 20 % loss still converges",
        .enabled(if: LabTests.missingPrerequisite() == nil, "needs root, ip netns, avahi-daemon and dbus (make deps installs them)"))
    func meshFaults() throws {
        let (status, output, state, directory) = try Self.labRun("\(Binaries.packageRoot.path)/Tests/Fixtures/lab/mesh-faults.yaml", timeout: 600)
        #expect(status == 0 && output.contains("17/17 steps passed"), "\(output)")
        // gw2 was killed twice during its 6 MB download; the one that finished resumed.
        let gw2 = (try? String(contentsOfFile: "\(state)/logs/gw2.log", encoding: .utf8)) ?? ""
        let fetched = gw2.split(separator: "\n").filter { $0.contains("image fetched from a peer") }
        #expect(fetched.count == 1, "\(fetched)")
        let resumed = fetched.first.flatMap { line in
            line.split(separator: " ").first { $0.hasPrefix("transfer.resumedFrom=") }.flatMap { Int($0.dropFirst(21)) }
        }
        #expect((resumed ?? 0) > 0, "\(fetched)")
        #expect(gw2.components(separatedBy: "otamesh agent gw2 ready").count - 1 == 3)
        #expect(Self.labNamespaces(prefix: "otl-mf-").isEmpty)
        withExtendedLifetime(directory) {}
    }

    @Test(
        "three-floors-rollout: 1 % → 100 % on every floor; a failing floor halts the next rollout everywhere, nothing starts after; outsiders are refused",
        .enabled(if: LabTests.missingPrerequisite() == nil, "needs root, ip netns, avahi-daemon and dbus (make deps installs them)"))
    func threeFloorsRollout() throws {
        let topology = "\(Binaries.packageRoot.path)/Topologies/three-floors-rollout.yaml"
        let (status, output, state, directory) = try Self.labRun(topology, timeout: 180)
        let steps = (try? TopologyFileSteps.count(topology)) ?? 0
        #expect(status == 0 && output.contains("\(steps)/\(steps) steps passed"), "\(output)")
        // Two resumes and two starts, each refused by all three gateways.
        #expect(output.components(separatedBy: "refused by 3/3 gateways").count - 1 == 4, "\(output)")

        let data = try #require(FileManager.default.contents(atPath: "\(state)/rollouts.json"), "no rollouts.json: \(output)")
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rollouts = record["rollouts"] as? [[String: Any]] ?? []
        let r1 = try #require(rollouts.first { $0["name"] as? String == "r1" })
        #expect((r1["modes"] as? [String: String])?.values.allSatisfy { $0 == "completed" } == true, "\(r1)")
        #expect((r1["updatesStarted"] as? Int) == 12, "\(r1)")
        // Floor 3's devices fetch nothing: gw3 found them by mDNS, probed them and pushed 2.0.0 to each.
        let gw3 = (try? String(contentsOfFile: "\(state)/logs/gw3.log", encoding: .utf8)) ?? ""
        let found = Set(
            gw3.split(separator: "\n").filter { $0.contains("found a push device") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("device.id=") }.map(String.init)
            })
        #expect(found.count == 4, "\(gw3.suffix(3_000))")
        // Two projectMM devices (they fetched the gateway's URL) and two ArduinoOTA ones (the image
        // went over espota's invitation and connection back) came back on 2.0.0.
        for group in ["f3-panel", "f3-relay"] {
            let log = (try? String(contentsOfFile: "\(state)/logs/dev-\(group).log", encoding: .utf8)) ?? ""
            let booted = log.split(separator: "\n").filter { $0.contains("\"event\":\"booted\"") && $0.contains("\"version\":\"2.0.0\"") }
            #expect(booted.count == 2, "\(group): \(log.suffix(3_000))")
        }
        #expect(gw3.contains("mdns.type=_arduino._tcp") && gw3.contains("mdns.type=_http._tcp"), "\(gw3.suffix(3_000))")
        let r2 = try #require(rollouts.first { $0["name"] as? String == "r2" })
        #expect((r2["modes"] as? [String: String])?.count == 3 && (r2["modes"] as? [String: String])?.values.allSatisfy { $0 == "halted" } == true)
        // The threshold was crossed on floor 2 (gw2's devices); every gateway knew the halt.
        #expect(((r2["halt"] as? [String: Any])?["reason"] as? String)?.contains("failed") == true, "\(r2)")
        #expect(Set((r2["haltKnownAfter"] as? [String: Double])?.keys.map { $0 } ?? []) == ["gw1", "gw2", "gw3"], "\(r2)")
        #expect((r2["haltEverywhereAfter"] as? Double).map { $0 < 10 } == true, "\(r2)")
        #expect((r2["startsAfterHalt"] as? [String])?.isEmpty == true, "\(r2)")
        // Not every device of floors 1 and 3 was started: the halt held them back.
        #expect(((r2["updatesStarted"] as? Int) ?? 12) < 12, "\(r2)")
        #expect(Self.labNamespaces(prefix: "otl-tfr-").isEmpty)
        withExtendedLifetime(directory) {}
    }

    @Test(
        "apps-rollout: settings set at one gateway configure devices on both floors; a rollout of app + configuration completes, each device on 2.1.0 with its own configuration; then a settings change alone",
        .enabled(if: LabTests.missingPrerequisite() == nil, "needs root, ip netns, avahi-daemon and dbus (make deps installs them)"))
    func appsRollout() throws {
        let topology = "\(Binaries.packageRoot.path)/Topologies/apps-rollout.yaml"
        let (status, output, state, directory) = try Self.labRun(topology, timeout: 240)
        let steps = (try? TopologyFileSteps.count(topology)) ?? 0
        #expect(status == 0 && output.contains("\(steps)/\(steps) steps passed"), "\(output)")
        #expect(output.contains("6/6 devices updated and configured, 0 failed"), "\(output)")

        let data = try #require(FileManager.default.contents(atPath: "\(state)/rollouts.json"), "no rollouts.json: \(output)")
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rollouts = record["rollouts"] as? [[String: Any]] ?? []
        for name in ["r1", "r2"] {
            let rollout = try #require(rollouts.first { $0["name"] as? String == name })
            #expect((rollout["modes"] as? [String: String])?.values.allSatisfy { $0 == "completed" } == true, "\(rollout)")
        }
        // What the devices themselves read from the filesystems they mounted: each its floor's
        // settings, the new firmware first (updated before configured for 2.1.0), floor 2's
        // settings coming from gw2, which learned them by gossip from gw1.
        for (group, ssid, interval) in [("f1-station", "floor-1", "30"), ("f2-station", "floor-2", "15")] {
            let log = (try? String(contentsOfFile: "\(state)/logs/dev-\(group).log", encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n").map(String.init)
            let updated = lines.filter { $0.contains("\"event\":\"updated\"") && $0.contains("\"to\":\"2.1.0\"") }
            #expect(updated.count == 3, "\(group): \(log.suffix(3_000))")
            let configured = lines.filter { $0.contains("\"event\":\"configured\"") }
            let last = Dictionary(
                configured.compactMap { line in line.split(separator: "\"").dropFirst(3).first.map { (String($0), line) } }, uniquingKeysWith: { $1 })
            #expect(last.count == 3, "\(group): \(configured)")
            #expect(last.values.allSatisfy { $0.contains("\"setting.ssid\":\"\(ssid)\"") && $0.contains("\"setting.interval\":\"\(interval)\"") }, "\(last)")
            if let firstUpdate = lines.firstIndex(where: { $0.contains("\"to\":\"2.1.0\"") }),
                let firstNewDefault = lines.firstIndex(where: { $0.contains("\"event\":\"configured\"") && $0.contains("\"setting.interval\":\"30\"") })
            {
                #expect(firstUpdate < firstNewDefault, "configuration for 2.1.0 before its firmware: \(group)")
            }
        }
        #expect(Self.labNamespaces(prefix: "otl-apr-").isEmpty)
        withExtendedLifetime(directory) {}
    }
}

/// The number of steps in a topology's scenario, counted from the file (a `- ` item under `scenario:`).
enum TopologyFileSteps {
    static func count(_ path: String) throws -> Int {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let range = text.range(of: "\nscenario:\n") else { return 0 }
        return text[range.upperBound...].split(separator: "\n").filter { $0.hasPrefix("  - ") }.count
    }
}
