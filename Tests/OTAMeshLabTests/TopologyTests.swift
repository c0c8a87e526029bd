import Foundation
import Testing

@testable import OTAMeshLab

/// The repository's Topologies/ directory.
let topologiesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Topologies").path

/// A small valid topology the error tests vary one line of.
let minimal = """
    name: mini
    networks:
      backbone: { subnet: 10.77.0.0/24 }
      uplink: { subnet: 10.77.100.0/24 }
    origin:
      network: uplink
      releases:
        - { path: esp32/app/1.0.0.bin, image: fw.bin }
    gateways:
      gw1: { networks: [backbone, uplink], upstream: true }
      gw2: { networks: [backbone] }
    """

func parse(_ text: String) throws(TopologyError) -> Topology {
    try TopologyFile.parse(text, source: "t.yaml", baseDirectory: "/labs")
}

/// The error a text gives, or nil if it parses.
func failure(_ text: String) -> TopologyError? {
    do { _ = try parse(text); return nil } catch { return error }
}

@Suite("topology files")
struct TopologyTests {
    @Test(
        "the shipped topologies parse", arguments: ["two-gateways", "three-floors", "campus-32", "three-floors-rollout", "campus-32-rollout", "apps-rollout"])
    func shipped(name: String) throws {
        let topology = try TopologyFile.load(path: "\(topologiesDirectory)/\(name).yaml")
        #expect(topology.name == name)
        #expect(!topology.scenario.isEmpty)
        #expect(topology.gateways.contains { $0.upstream })
        for network in topology.networks { #expect(IPv4Subnet("10.77.0.0/16")!.overlaps(network.subnet) && network.subnet.prefixLength >= 16) }
        for case .file(let image) in topology.origin?.releases.map(\.image) ?? [] {
            #expect(FileManager.default.fileExists(atPath: "\(topology.baseDirectory)/\(image)"), "\(image)")
        }
    }

    @Test("three-floors in detail")
    func threeFloors() throws {
        let topology = try TopologyFile.load(path: "\(topologiesDirectory)/three-floors.yaml")
        #expect(topology.shortName == "tf" && topology.site == "three-floors")
        #expect(topology.networks.map(\.name) == ["backbone", "uplink", "floor1", "floor2", "floor3"])
        #expect(topology.network(named: "backbone")?.shape == LinkShape(rate: LinkRate("100mbit"), delay: 0.001))
        #expect(topology.gateways.map(\.name) == ["gw1", "gw2", "gw3"])
        #expect(topology.gateway(named: "gw3")?.join == ["gw1"])
        #expect(topology.devices.map(\.count) == [2, 2, 2])
        #expect(topology.origin?.releases.last?.image == .made(chip: "esp32", version: "2.0.0", size: 4_096))
        #expect(
            topology.scenario == [
                .wait(.converged, timeout: 60), .kill("gw2"), .wait(.failed("gw2"), timeout: 60), .start("gw2"), .wait(.converged, timeout: 60),
            ])
    }

    @Test("every scenario step kind parses")
    func steps() throws {
        let topology = try parse(
            minimal + """

                scenario:
                  - wait: converged
                  - wait: { alive: gw2, timeout: 90s }
                  - wait: { failed: gw2, by: [gw1] }
                  - stop: gw2
                  - partition: [[gw1], [gw2]]
                  - heal
                  - heal: true
                  - loss: { network: backbone, percent: 20 }
                  - rate: { network: backbone, rate: 1mbit }
                  - rate: { network: backbone, rate: unlimited }
                  - delay: { network: backbone, delay: 50ms }
                  - sleep: 1m
                """)
        #expect(
            topology.scenario == [
                .wait(.converged, timeout: 60), .wait(.alive("gw2"), timeout: 90), .wait(.failed("gw2", by: ["gw1"]), timeout: 60), .stop("gw2"),
                .partition([["gw1"], ["gw2"]]),
                .heal, .heal, .link(network: "backbone", .loss(20)), .link(network: "backbone", .rate(LinkRate(bitsPerSecond: 1_000_000))),
                .link(network: "backbone", .rate(nil)), .link(network: "backbone", .delay(0.05)), .sleep(60),
            ])
        #expect(topology.shortName == "mini" && topology.site == "mini")
    }

    @Test("rollout steps, device hardware and faults")
    func rolloutSteps() throws {
        let topology = try parse(
            minimal + """

                devices:
                  - { name: d1, network: backbone, gateway: gw2, family: generic, hardware: esp32, faults: [corrupt-flash] }
                scenario:
                  - say: Watch this.
                  - rollout: { name: r1, target: esp32/app/1.0.0.bin, select: hardware=esp32, stages: [1, 100], soak: 3s, success: 90%,
                               max-failures: [0, 5%], min-finished: 2, concurrency: 3, device-timeout: 2m, at: gw1, signed-by: [admin-a, admin-b] }
                  - wait: { rollout: r1, mode: completed, timeout: 90s }
                  - halt: { rollout: r1, at: gw2 }
                  - resume: { rollout: r1, signed-by: rogue }
                  - resume: { rollout: r1, signed-by: nobody }
                  - resume: { rollout: r1, at: gw2, signed-by: [admin-b, admin-a] }
                  - devices: { group: d1, version: 2.0.0 }
                  - rollout: { name: r2, target: esp32/app/1.0.0.bin, stages: [100], at: gw2, signed-by: nobody }
                """)
        #expect(topology.devices[0].hardware == "esp32" && topology.devices[0].faults == [.corruptFlash])
        let spec = RolloutSpec(
            name: "r1", target: "esp32/app/1.0.0.bin", select: "hardware=esp32", stages: [1, 100], soak: 3, success: 90,
            maxFailures: ["0", "5%"], minFinished: 2, concurrency: 3, deviceTimeout: 120, at: "gw1",
            signers: .admins([.adminA, .adminB]))
        #expect(
            topology.scenario == [
                .say("Watch this."), .rollout(spec), .rolloutMode("r1", mode: "completed", timeout: 90),
                .halt("r1", at: "gw2", reason: "halted by the lab scenario"),
                .resume("r1", at: "gw1", signers: .admins([.rogue])), .resume("r1", at: "gw1", signers: .nobody),
                .resume("r1", at: "gw2", signers: .admins([.adminB, .adminA])),
                .devices(group: "d1", faults: [], version: "2.0.0"),
                .rollout(
                    RolloutSpec(
                        name: "r2", target: "esp32/app/1.0.0.bin", select: "", stages: [100], soak: 2, success: nil, maxFailures: [],
                        minFinished: nil, concurrency: nil, deviceTimeout: nil, at: "gw2", signers: .nobody)),
            ])
        #expect(
            spec.startArguments == [
                "--target", "esp32/app/1.0.0.bin", "--select", "hardware=esp32", "--stages", "1,100", "--soak", "3s",
                "--success", "90%", "--max-failures", "0", "--max-failures", "5%", "--min-finished", "2",
                "--concurrency", "3", "--device-timeout", "120s",
            ])
        #expect(Signers.nobody.mustBeRefused && Signers.admins([.rogue]).mustBeRefused && !Signers.admins([.adminA]).mustBeRefused)
    }

    @Test(
        "rollout step errors",
        arguments: [
            ("  - wait: { rollout: r9, mode: completed }", "scenario[0].wait.rollout: no earlier step starts rollout 'r9'"),
            (
                "  - rollout: { name: r1, target: esp32/app/9.bin, stages: [100], at: gw1 }",
                "scenario[0].rollout.target: 'esp32/app/9.bin' is not one of the origin's releases"
            ),
            ("  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [50, 10, 100], at: gw1 }", "scenario[0].rollout.stages[1]: stages rise"),
            ("  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [50], at: gw1 }", "scenario[0].rollout.stages: the last stage must be 100"),
            ("  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1, signed-by: mallory }", "unknown signer 'mallory'"),
            ("  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1, signed-by: [admin-a, rogue] }", "'rogue' alone or by 'nobody'"),
            (
                "  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1, max-failures: lots }",
                "expected a count like 0 or a share like 5%"
            ),
            ("  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1, colour: red }", "scenario[0].rollout.colour: unknown key 'colour'"),
            (
                "  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1 }\n  - wait: { rollout: r1, mode: done }",
                "scenario[1].wait.mode: unknown mode 'done'"
            ),
            (
                "  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1 }\n  - resume: { rollout: r1 }",
                "scenario[1].resume: missing required key 'at'"
            ),
            (
                "  - rollout: { name: r1, target: esp32/app/1.0.0.bin, stages: [100], at: gw1, signed-by: rogue }\n  - halt: { rollout: r1, at: gw1 }",
                "no earlier step starts rollout 'r1'"
            ),
            ("  - devices: { group: nope }", "scenario[0].devices.group: unknown device group 'nope'"),
            ("  - devices: { group: d1, faults: [explode] }", "scenario[0].devices.faults[0]: unknown fault 'explode' (known: corrupt-flash)"),
        ])
    func rolloutErrors(step: String, expected: String) {
        let text = minimal + "\ndevices:\n  - { name: d1, network: backbone, gateway: gw2, family: generic }\nscenario:\n" + step
        let error = failure(text)
        #expect(error?.description.contains(expected) == true, "got: \(error?.description ?? "no error")")
    }

    @Test(
        "errors name the file, the key and why",
        arguments: [
            (minimal + "\nextra: 1", "t.yaml:12: extra: unknown key 'extra'"),
            (minimal.replacingOccurrences(of: "10.77.100.0/24", with: "10.77.100.1/24"), "t.yaml:4: networks.uplink.subnet: expected an IPv4 subnet"),
            (minimal.replacingOccurrences(of: "10.77.100.0/24", with: "10.77.0.128/25"), "networks.uplink.subnet: 10.77.0.128/25 overlaps network 'backbone'"),
            (minimal.replacingOccurrences(of: "10.77.100.0/24", with: "8.8.8.0/24"), "networks.uplink.subnet: 8.8.8.0/24 is not private address space"),
            (
                minimal.replacingOccurrences(of: "[backbone]", with: "[backbone, floor9]"),
                "gateways.gw2.networks[1]: unknown network 'floor9' (known: backbone, uplink)"
            ),
            (
                minimal.replacingOccurrences(of: "[backbone]", with: "[backbone], upstream: true"),
                "gateways.gw2.upstream: an upstream gateway must be on the origin's network 'uplink'"
            ),
            (minimal.replacingOccurrences(of: "[backbone]", with: "[backbone], join: [gw9]"), "gateways.gw2.join[0]: unknown gateway 'gw9' (known: gw1, gw2)"),
            (
                minimal.replacingOccurrences(of: "[backbone]", with: "[backbone], address: { backbone: 10.77.0.11 }"),
                "gateways.gw2.address.backbone: 10.77.0.11 on backbone is already gateway gw1's"
            ),
            (
                minimal.replacingOccurrences(of: "[backbone]", with: "[backbone], address: { backbone: 10.77.1.5 }"),
                "10.77.1.5 is not a host address of backbone"
            ),
            (
                minimal.replacingOccurrences(of: "[backbone]", with: "[backbone], adress: {}"),
                "gateways.gw2.adress: unknown key 'adress' (known: networks, upstream, join, address)"
            ),
            (minimal.replacingOccurrences(of: "name: mini", with: "name: Mini Lab"), "name: topology name 'Mini Lab' must be"),
            (minimal.replacingOccurrences(of: "name: mini", with: "name: mini\nshort: toolong"), "short: short name 'toolong' must be 1…4 characters"),
            (
                minimal.replacingOccurrences(of: "image: fw.bin", with: "image: fw.bin, make: { version: 1.0.0 }"),
                "origin.releases[0]: give exactly one of 'image'"
            ),
            (minimal + "\nscenario:\n  - kill: gw7", "scenario[0].kill: unknown gateway 'gw7'"),
            (minimal + "\nscenario:\n  - explode: gw1", "scenario[0].explode: unknown key 'explode'"),
            (minimal + "\nscenario:\n  - { kill: gw1, start: gw1 }", "scenario[0]: a step has exactly one key"),
            (minimal + "\nscenario:\n  - partition: [[gw1], [gw1, gw2]]", "scenario[0].partition[1][0]: gateway 'gw1' is in two groups"),
            (minimal + "\nscenario:\n  - partition: [[gw1, gw2]]", "scenario[0].partition: a partition needs at least two groups"),
            (minimal + "\nscenario:\n  - wait: { failed: gw2, alive: gw1 }", "scenario[0].wait: give exactly one of converged, failed, alive or discovered"),
            (minimal + "\nscenario:\n  - wait: { converged: true, by: [gw1] }", "scenario[0].wait.by: 'by' goes with failed or alive"),
            (minimal + "\nscenario:\n  - wait: { failed: gw1, by: [gw3] }", "scenario[0].wait.by[0]: unknown gateway 'gw3'"),
            (minimal + "\nscenario:\n  - wait: { converged: true, timeout: soon }", "scenario[0].wait.timeout: expected a duration"),
            (minimal + "\nscenario:\n  - loss: { network: backbone, percent: 120 }", "scenario[0].loss.percent: expected a percentage 0…100"),
            (
                minimal + "\ndevices:\n  - { name: d, network: uplink, gateway: gw2, family: esp32-httpupdate }",
                "devices[0].gateway: gateway 'gw2' is not on network 'uplink'"
            ),
            (minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: toaster }", "devices[0].family: unknown family 'toaster'"),
            (
                minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: projectmm, fail: explode }",
                "devices[0].fail: unknown projectmm fault 'explode' (known: refuse-501"
            ),
            (
                minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: projectmm, interval: 1s }",
                "devices[0].interval: 'interval' does not apply to push family projectmm"
            ),
            (
                minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: generic, variant: esp32 }",
                "devices[0].variant: 'variant' does not apply to polling family generic"
            ),
            (
                minimal
                    + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: http-upload }\nscenario:\n  - devices: { group: d, faults: [corrupt-flash] }",
                "faults do not apply to push family http-upload"
            ),
            ("name: x\nnetworks: {}\ngateways: {}", "t.yaml:2: networks: a lab needs at least one network"),
            ("name: [x", "t.yaml: not valid YAML"),
        ])
    func errors(text: String, expected: String) {
        let error = failure(text)
        #expect(error?.description.contains(expected) == true, "got: \(error?.description ?? "no error")")
    }

    static let appKeyErrors: [(String, String)] = [
        (
            minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: generic, filesystem: \"spiffs:size=0x20000\" }",
            "devices[0].filesystem: 'filesystem' applies to esp8266-httpupdate, esp32-httpupdate"
        ),
        (
            minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: esp32-httpupdate, filesystem: fat }",
            "devices[0].filesystem: expected spiffs:KEY=VALUE"
        ),
        (
            minimal.replacingOccurrences(of: "image: fw.bin", with: "image: fw.bin, app: apps/none.yaml"),
            "origin.releases[0].app: app spec 'apps/none.yaml' not found (looked at /labs/apps/none.yaml)"
        ),
        (
            minimal
                + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: esp32-httpupdate }\nscenario:\n  - configure: { group: d, at: gw2, set: { ssid: x } }",
            "scenario[0].configure.group: device group 'd' checks no filesystem"
        ),
        (
            minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: esp32-httpupdate, filesystem: spiffs }"
                + "\nscenario:\n  - configure: { group: d, at: gw2, app: weather, set: { ssid: x } }",
            "scenario[0].configure.app: expected NAME@VERSION"
        ),
        (
            minimal + "\ndevices:\n  - { name: d, network: backbone, gateway: gw2, family: esp32-httpupdate, filesystem: spiffs }"
                + "\nscenario:\n  - wait: { configured: d, with: {}, timeout: 5s }",
            "scenario[0].wait.with: give at least one prop: value"
        ),
    ]

    @Test("errors of the app-configuration keys name the key and why", arguments: appKeyErrors)
    func appErrors(text: String, expected: String) {
        let error = failure(text)
        #expect(error?.description.contains(expected) == true, "got: \(error?.description ?? "no error")")
    }

    @Test("apps-rollout: app specs on releases, filesystem groups, configure steps (their CSV), configured waits, configuration rollouts")
    func appsRollout() throws {
        let topology = try TopologyFile.load(path: "\(topologiesDirectory)/apps-rollout.yaml")
        #expect(topology.origin?.releases.map(\.app) == ["apps/weather-station-2.0.0.yaml", "apps/weather-station-2.1.0.yaml"])
        #expect(topology.devices.map(\.filesystem) == ["spiffs:size=0x20000,meta-len=4", "spiffs:size=0x20000,meta-len=4"])
        let configures = topology.scenario.compactMap { step -> ConfigureSpec? in if case .configure(let spec) = step { spec } else { nil } }
        #expect(configures.count == 3)
        #expect(configures[1].settings.map(\.0) == ["ssid", "broker"])
        #expect(
            configures[1].csv(devices: ["02:77:00:01:00:00"])
                == "\"device\",\"app\",\"ssid\",\"broker\"\r\n\"02:77:00:01:00:00\",\"weather-station@2.0.0\",\"floor-2\",\"mqtt.floor2.local\"\r\n")
        #expect(topology.scenario.contains(.wait(.configured("f2-station", settings: ["ssid": "floor-2", "interval": "15"]), timeout: 10)))
        let starts = topology.scenario.compactMap { step -> RolloutSpec? in if case .rollout(let spec) = step { spec } else { nil } }
        #expect(starts.allSatisfy { $0.configuration && $0.startArguments.contains("--configuration") })

        // Device ids as devicesim derives them from the group's MAC base.
        let plan = try LabPlan(topology)
        let launches = Launches(plan: plan, paths: LabPaths(root: "/tmp/s"), binaries: LabBinaries(otamesh: "otamesh", devicesim: "sim"))
        #expect(launches.deviceIDs(topology.devices[1]) == ["02:77:00:01:00:00", "02:77:00:01:00:01", "02:77:00:01:00:02"])
        #expect(launches.devices(topology.devices[0])?.argv.suffix(2) == ["--filesystem", "spiffs:size=0x20000,meta-len=4"])
        #expect(launches.originBuild.contains { $0.argv.contains("add-app") && $0.argv.contains("esp32/weather/2.1.0.bin") })
    }

    @Test("a missing file is an error naming it")
    func missingFile() {
        #expect(throws: TopologyError.self) { try TopologyFile.load(path: "/nonexistent/lab.yaml") }
    }

    @Test("quantities")
    func quantities() {
        #expect(IPv4Subnet("10.77.0.0/24")?.host(11)?.description == "10.77.0.11")
        #expect(IPv4Subnet("10.77.0.0/24")?.host(255) == nil)
        #expect(IPv4Subnet("10.77.0.0/30")?.host(2)?.description == "10.77.0.2")
        #expect(IPv4Subnet("10.77.0.0/30")?.host(3) == nil)
        #expect(IPv4Address("10.77.0.256") == nil && IPv4Address("10.77.0") == nil)
        #expect(LinkRate("100mbit")?.bitsPerSecond == 100_000_000 && LinkRate("1.5gbit")?.bitsPerSecond == 1_500_000_000)
        #expect(LinkRate("100") == nil && LinkRate("10bit") == nil)
        #expect(LinkRate("100mbit")?.text == "100mbit" && LinkRate("1.5gbit")?.text == "1.5gbit" && LinkRate("9000bit")?.text == "9kbit")
        #expect(LabDuration.number(20) == "20" && LabDuration.number(0.5) == "0.5")
        #expect(ScenarioStep.link(network: "backbone", .rate(LinkRate("20mbit"))).summary == "rate backbone 20mbit")
        #expect(ScenarioStep.link(network: "backbone", .loss(20)).summary == "loss backbone 20%")
        #expect(LabDuration.seconds("500ms") == 0.5 && LabDuration.seconds("2m") == 120 && LabDuration.seconds("7d") == 604_800)
        #expect(LabDuration.seconds("90") == 90 && LabDuration.seconds("-1s") == nil)
        #expect(LabDuration.tc(0.001) == "1000us")
        #expect(TopologyFile.derivedShortName("three-floors") == "tf" && TopologyFile.derivedShortName("campus") == "camp")
    }
}
