import Foundation
import Testing

@testable import OTAMeshLab

func shipped(_ name: String) throws -> LabPlan {
    try LabPlan(TopologyFile.load(path: "\(topologiesDirectory)/\(name).yaml"))
}

let paths = LabPaths(root: "/tmp/otamesh-lab/x")
let binaries = LabBinaries(otamesh: "/opt/bin/otamesh", devicesim: "/opt/bin/otamesh-devicesim")

@Suite("lab plans")
struct PlanTests {
    @Test("layout: namespaces, ports and deterministic addresses")
    func layout() throws {
        let layout = try shipped("two-gateways").layout
        #expect(layout.namespaces == ["otl-tg-sw", "otl-tg-or", "otl-tg-g1", "otl-tg-g2"])
        #expect(layout.origin?.attachments.map(\.address.description) == ["10.77.100.1"])
        #expect(
            layout.gateway("gw1")?.attachments.map { "\($0.interface)=\($0.address) via \($0.port)" }
                == ["backbone=10.77.0.11 via v1n0", "uplink=10.77.100.11 via v1n1"])
        #expect(layout.gateway("gw2")?.attachments.map(\.address.description) == ["10.77.0.12"])
        #expect(layout.advertiseAddress(of: "gw1")?.description == "10.77.0.11")
        #expect(layout.ports(of: "backbone") == ["v1n0", "v2n0"] && layout.ports(of: "uplink") == ["v0n1", "v1n1"])

        let floors = try shipped("three-floors").layout
        #expect(floors.deviceHosts.map(\.namespace) == ["otl-tf-d2", "otl-tf-d3", "otl-tf-d4"])
        #expect(floors.deviceHost(on: "floor2")?.attachments.map(\.address.description) == ["10.77.2.101"])
        #expect(floors.address(of: "gw1", from: "gw3")?.description == "10.77.0.11")
    }

    @Test("the two-gateway setup, command by command")
    func setup() throws {
        let plan = try shipped("two-gateways")
        let ipv6Off = ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        var expected: [[String]] = []
        for ns in ["otl-tg-sw", "otl-tg-or", "otl-tg-g1", "otl-tg-g2"] {
            expected += [["ip", "netns", "add", ns], ["ip", "netns", "exec", ns] + ipv6Off, ["ip", "-n", ns, "link", "set", "lo", "up"]]
        }
        for bridge in ["br-backbone", "br-uplink"] {
            expected += [
                ["ip", "-n", "otl-tg-sw", "link", "add", bridge, "type", "bridge", "mcast_snooping", "0"],
                ["ip", "-n", "otl-tg-sw", "link", "set", bridge, "up"],
            ]
        }
        for (ns, port, network, address) in [
            ("otl-tg-or", "v0n1", "uplink", "10.77.100.1"), ("otl-tg-g1", "v1n0", "backbone", "10.77.0.11"),
            ("otl-tg-g1", "v1n1", "uplink", "10.77.100.11"), ("otl-tg-g2", "v2n0", "backbone", "10.77.0.12"),
        ] {
            expected += [
                ["ip", "-n", "otl-tg-sw", "link", "add", port, "type", "veth", "peer", "name", network, "netns", ns],
                ["ip", "-n", "otl-tg-sw", "link", "set", port, "master", "br-\(network)"],
                ["ip", "-n", "otl-tg-sw", "link", "set", port, "up"],
                ["ip", "-n", ns, "addr", "add", "\(address)/24", "dev", network],
                ["ip", "-n", ns, "link", "set", network, "up"],
            ]
        }
        #expect(plan.setup.map(\.argv) == expected)
        #expect(plan.setup.allSatisfy { !$0.mayFail })
        #expect(plan.teardown.map(\.argv) == ["otl-tg-g2", "otl-tg-g1", "otl-tg-or", "otl-tg-sw"].map { ["ip", "netns", "del", $0] })
        #expect(plan.teardown.allSatisfy { $0.mayFail })
    }

    @Test(
        "nothing is created in the host's namespace, no routes, names fit",
        arguments: ["two-gateways", "three-floors", "campus-32", "three-floors-rollout", "campus-32-rollout"])
    func confined(name: String) throws {
        let plan = try shipped(name)
        for invocation in plan.setup {
            let argv = invocation.argv
            #expect(argv[0] == "ip")
            #expect(argv[1] == "-n" || (argv[1] == "netns" && ["add", "exec"].contains(argv[2])), "\(invocation)")
            if argv[1] == "-n" || argv[2] == "exec" { #expect(argv.contains { $0.hasPrefix("otl-") }) }
            #expect(!argv.contains("route") && !argv.contains("default"), "\(invocation)")
        }
        let names =
            plan.layout.namespaces + plan.layout.bridges.map(\.bridge)
            + plan.layout.hosts.flatMap { $0.attachments.flatMap { [$0.port, $0.interface] } }
        for name in names { #expect(name.count <= 15, "\(name)") }
        #expect(Set(plan.layout.hosts.flatMap { $0.attachments.map(\.port) }).count == plan.layout.hosts.map(\.attachments.count).reduce(0, +))
        for network in plan.topology.networks {
            for mode in [ShapingMode.netem, .fallback] {
                for invocation in plan.shaping(network.name, network.shape, mode: mode) {
                    #expect(invocation.argv.contains(plan.layout.switchNamespace), "\(invocation)")
                }
            }
        }
    }

    @Test("shaping with netem, and the tbf + nftables fallback")
    func shaping() throws {
        let plan = try shipped("three-floors")
        let backbone = LinkShape(rate: LinkRate("100mbit"), delay: 0.001, lossPercent: 2.5)
        #expect(
            plan.shaping("backbone", backbone, mode: .netem).map(\.argv)
                == ["v1n0", "v2n0", "v3n0"].map {
                    ["tc", "-n", "otl-tf-sw", "qdisc", "replace", "dev", $0, "root", "netem", "delay", "1000us", "loss", "2.5%", "rate", "100000000bit"]
                })
        let fallback = plan.shaping("backbone", backbone, mode: .fallback)
        #expect(
            fallback.prefix(3).map(\.argv)
                == ["v1n0", "v2n0", "v3n0"].map {
                    ["tc", "-n", "otl-tf-sw", "qdisc", "replace", "dev", $0, "root", "tbf", "rate", "100000000bit", "burst", "125000", "latency", "100ms"]
                })
        #expect(fallback[3].argv == ["ip", "netns", "exec", "otl-tf-sw", "nft", "-f", "-"])
        #expect(
            fallback[3].stdin == """
                table netdev otlab_loss_0 {}
                delete table netdev otlab_loss_0
                table netdev otlab_loss_0 {
                  chain v1n0 {
                    type filter hook egress device "v1n0" priority 0; policy accept;
                    numgen random mod 10000 < 250 drop
                  }
                  chain v2n0 {
                    type filter hook egress device "v2n0" priority 0; policy accept;
                    numgen random mod 10000 < 250 drop
                  }
                  chain v3n0 {
                    type filter hook egress device "v3n0" priority 0; policy accept;
                    numgen random mod 10000 < 250 drop
                  }
                }

                """)
        // Unshaping removes the qdiscs (tolerating none) and leaves no loss table.
        let off = plan.shaping("floor1", LinkShape(), mode: .fallback)
        #expect(off.first?.argv == ["tc", "-n", "otl-tf-sw", "qdisc", "del", "dev", "v1n2", "root"] && off.first?.mayFail == true)
        #expect(off.last?.stdin == "table netdev otlab_loss_2 {}\ndelete table netdev otlab_loss_2\n")
        #expect(plan.shaping("floor1", LinkShape(), mode: .netem).allSatisfy { $0.mayFail })
        #expect(LabPlan.burstBytes(LinkRate("1mbit")!) == 16 * 1024)
    }

    @Test("partition and heal")
    func partition() throws {
        let plan = try shipped("three-floors")
        let commands = plan.partition([["gw1"], ["gw2"]])
        #expect(commands.map { $0.argv[3] } == ["otl-tf-g1", "otl-tf-g2", "otl-tf-g3"])
        #expect(commands[0].stdin?.contains("ip saddr { 10.77.0.12, 10.77.2.12 } drop") == true)
        #expect(commands[0].stdin?.contains("ip daddr { 10.77.0.12, 10.77.2.12 } drop") == true)
        #expect(commands[1].stdin?.contains("ip saddr { 10.77.0.11, 10.77.100.11, 10.77.1.11 } drop") == true)
        // gw3 is in no group: whatever partition it had is healed.
        #expect(commands[2].stdin == "table inet otlab_partition {}\ndelete table inet otlab_partition\n")
        #expect(plan.heal.count == 3 && plan.heal.allSatisfy { $0.stdin == commands[2].stdin })
    }

    @Test("the gateway's command line, with and without the mesh flags")
    func gatewayArguments() throws {
        let plan = try shipped("three-floors")
        let mesh = Launches(plan: plan, paths: paths, binaries: binaries)
        let root = "/tmp/otamesh-lab/x"
        #expect(
            mesh.gatewayArguments("gw3") == [
                "agent", "--data-dir", "\(root)/gw/gw3/data", "--node-name", "gw3", "--admin-listen", "127.0.0.1:8071",
                "--device-listen", "0.0.0.0:8070", "--device-tls-listen", "off",
                "--gossip-listen", "0.0.0.0:7946", "--gossip-advertise", "10.77.0.13", "--site-keyring", "\(root)/site-keyring.json",
                "--discovery", "mdns", "--join", "10.77.0.11:7946",
                "--trust-root", "\(root)/origin/site/metadata/1.root.json", "--site-trust", "\(root)/admin/site.trust",
            ])
        let gw1 = try #require(mesh.gateway("gw1"))
        #expect(
            gw1.commandLine == [
                "ip", "netns", "exec", "otl-tf-g1", "setpriv", "--pdeathsig", "KILL", "env",
                "DBUS_SYSTEM_BUS_ADDRESS=unix:path=\(root)/gw/gw1/bus", "AVAHI_COMPAT_NOWARN=1", "/opt/bin/otamesh",
            ]
                + (mesh.gatewayArguments("gw1") ?? []))
        #expect(
            gw1.argv.suffix(10) == [
                "--upstream-metadata-url", "http://10.77.100.1:8080/metadata", "--upstream-targets-url", "http://10.77.100.1:8080/targets",
                "--upstream-interval", "2s", "--trust-root", "\(root)/origin/site/metadata/1.root.json", "--site-trust", "\(root)/admin/site.trust",
            ])
        #expect(gw1.ready == .logContains("admin API + metrics: "))

        let bare = Launches(plan: plan, paths: paths, binaries: binaries, mesh: false)
        #expect(
            bare.gatewayArguments("gw3") == [
                "agent", "--data-dir", "\(root)/gw/gw3/data", "--node-name", "gw3", "--admin-listen", "127.0.0.1:8071",
                "--device-listen", "0.0.0.0:8070", "--device-tls-listen", "off", "--trust-root", "\(root)/origin/site/metadata/1.root.json",
            ])
    }

    @Test("origin, daemons and devices")
    func launches() throws {
        let plan = try shipped("three-floors")
        let launches = Launches(plan: plan, paths: paths, binaries: binaries)
        let root = "/tmp/otamesh-lab/x"
        let exec = ["ip", "netns", "exec", "otl-tf-or"]
        #expect(
            launches.originBuild.map(\.argv) == [
                exec + ["/opt/bin/otamesh", "release", "init", "--repo", "\(root)/origin/repo"],
                exec + [
                    "/opt/bin/otamesh", "release", "add", "--repo", "\(root)/origin/repo", "--path", "esp32/app/1.0.0.bin",
                    "\(topologiesDirectory)/../Tests/Fixtures/esp/esp32.bin",
                ],
                exec + [
                    "/opt/bin/otamesh-devicesim", "make-image", "--chip", "esp32", "--version", "2.0.0", "--size", "4096", "--seed", "2",
                    "-o", "\(root)/origin/images/1-esp32-2.0.0.bin",
                ],
                exec + [
                    "/opt/bin/otamesh", "release", "add", "--repo", "\(root)/origin/repo", "--path", "esp32/app/2.0.0.bin",
                    "\(root)/origin/images/1-esp32-2.0.0.bin",
                ],
                exec + ["/opt/bin/otamesh", "release", "publish", "--repo", "\(root)/origin/repo", "\(root)/origin/site"],
            ])
        #expect(launches.originServer?.argv == ["python3", "-m", "http.server", "8080", "--bind", "10.77.100.1", "--directory", "\(root)/origin/site"])

        let avahi = try #require(launches.avahi("gw2"))
        #expect(
            avahi.commandLine.prefix(9) == [
                "ip", "netns", "exec", "otl-tf-g2", "setpriv", "--pdeathsig", "KILL", "env",
                "DBUS_SYSTEM_BUS_ADDRESS=unix:path=\(root)/gw/gw2/bus",
            ])
        #expect(avahi.argv.suffix(2) == ["\(root)/gw/gw2/avahi-run", "\(root)/gw/gw2/avahi.conf"])
        #expect(launches.avahiConfig("gw2")?.contains("allow-interfaces=backbone,floor2\n") == true)
        #expect(launches.dbus("gw2")?.ready == .fileExists("\(root)/gw/gw2/bus"))

        let devices = try #require(launches.devices(plan.topology.devices[1]))
        #expect(devices.namespace == "otl-tf-d3")
        #expect(
            devices.argv == [
                "/opt/bin/otamesh-devicesim", "run", "--family", "esp8266-httpupdate", "--count", "2",
                "--gateway", "http://10.77.2.12:8070", "--mac-base", "02:77:00:01:00:00", "--interval", "5.0",
                "--deadline", "604800", "--seed", "2",
            ])
    }

    @Test("rollout admins, the site trust, rollout commands and device faults")
    func rolloutLaunches() throws {
        let plan = try shipped("three-floors-rollout")
        let launches = Launches(plan: plan, paths: paths, binaries: binaries)
        let root = "/tmp/otamesh-lab/x"
        #expect(
            launches.adminSetup(site: "three-floors").map(\.argv) == [
                ["/opt/bin/otamesh", "keys", "generate", "--name", "admin-a", "--dir", "\(root)/admin"],
                ["/opt/bin/otamesh", "keys", "generate", "--name", "admin-b", "--dir", "\(root)/admin"],
                ["/opt/bin/otamesh", "keys", "generate", "--name", "rogue", "--dir", "\(root)/admin"],
                [
                    "/opt/bin/otamesh", "keys", "site-trust", "--site", "three-floors", "--threshold", "2", "-o", "\(root)/admin/site.trust",
                    "\(root)/admin/admin-a.pub.json", "\(root)/admin/admin-b.pub.json",
                ],
            ])
        let exec = ["ip", "netns", "exec", "otl-tfr-g2", "/opt/bin/otamesh", "rollout"]
        let token = ["--admin", "http://127.0.0.1:8071", "--token-file", "\(root)/gw/gw2/data/keys/admin.token"]
        #expect(
            launches.rolloutCommand(["approve", "r-0123456789ab"], at: "gw2", signer: .adminB)?.argv
                == exec + ["approve", "r-0123456789ab"] + token + ["--key", "\(root)/admin/admin-b.pem"])
        #expect(
            launches.rolloutCommand(["resume", "r-0123456789ab"], at: "gw2", signer: .rogue)?.argv
                == exec + ["resume", "r-0123456789ab"] + token + ["--key", "\(root)/admin/rogue.pem", "--skip-admin-check"])
        #expect(
            launches.rolloutCommand(["resume", "r-0123456789ab"], at: "gw2", signer: nil, unsigned: true)?.argv
                == exec + ["resume", "r-0123456789ab"] + token + ["--unsigned"])
        #expect(launches.rolloutCommand(["list"], at: "gw9", signer: nil) == nil)

        var group = plan.topology.devices[1]
        #expect(launches.devices(group)?.argv.suffix(4) == ["--version", "1.0.0", "--hardware", "esp32"])
        group.faults = [.corruptFlash]
        group.version = "2.0.0"
        #expect(launches.devices(group)?.argv.suffix(5) == ["--version", "2.0.0", "--hardware", "esp32", "--corrupt-flash"])

        // Floor 3 is push-only: announced twins on their own ports, with a bus and avahi-daemon of their own.
        let panels = try #require(launches.devices(plan.topology.devices[2]))
        #expect(panels.argv.prefix(6) == ["/opt/bin/otamesh-devicesim", "serve", "--family", "projectmm", "--count", "2"])
        let relays = try #require(launches.devices(plan.topology.devices[3]))
        #expect(relays.argv.contains("arduino-ota") && relays.argv.suffix(2) == ["--http-base", "13500"], "\(relays.argv)")
        #expect(panels.argv.contains("--announce") && panels.argv.contains("10.77.3.101:12000"), "\(panels.argv)")
        #expect(panels.environment.contains("DBUS_SYSTEM_BUS_ADDRESS=unix:path=\(root)/gw/devices-floor3/bus"))
        #expect(launches.announcingDeviceHosts == ["devices-floor3"])
        #expect(launches.avahi("devices-floor3")?.namespace == panels.namespace)
        #expect(launches.avahiConfig("devices-floor3")?.contains("allow-interfaces=") == true)
    }

    @Test("the system bus configuration is adapted for one namespace")
    func dbusConfig() {
        let system = """
            <busconfig>
              <type>system</type>
              <user>messagebus</user>
              <fork/>
              <standard_system_servicedirs/>
              <servicehelper>/usr/lib/dbus-1.0/dbus-daemon-launch-helper</servicehelper>
              <pidfile>/run/dbus/pid</pidfile>
              <syslog/>
              <auth>EXTERNAL</auth>
              <listen>unix:path=/run/dbus/system_bus_socket</listen>
              <include ignore_missing="yes">/etc/dbus-1/system.conf</include>
              <includedir>system.d</includedir>
              <includedir>/etc/dbus-1/system.d</includedir>
              <include ignore_missing="yes">/etc/dbus-1/system-local.conf</include>
            </busconfig>
            """
        let adapted = DaemonConfig.dbus(adapting: system, socket: "/s/bus")
        #expect(
            adapted == """
                <busconfig>
                  <type>system</type>
                  <auth>EXTERNAL</auth>
                  <listen>unix:path=/s/bus</listen>
                  <includedir>/usr/share/dbus-1/system.d</includedir>
                  <includedir>/etc/dbus-1/system.d</includedir>
                </busconfig>
                """)
        #expect(DaemonConfig.dbus(adapting: "<busconfig>\n</busconfig>", socket: "/s/bus").contains("<listen>unix:path=/s/bus</listen>"))
    }
}
