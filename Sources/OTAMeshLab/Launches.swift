import Foundation
import OTAMeshCommon

/// A long-running process of the lab: started inside its namespace as a supervised child of the
/// runner, output appended to a log file in the state directory.
public struct Launch: Sendable, Equatable {
    /// When the process counts as up.
    public enum Ready: Sendable, Equatable {
        case immediately
        /// The log (from where this start began) contains the text.
        case logContains(String)
        case fileExists(String)
    }

    public var label: String
    /// Empty: the host's namespace (only the dashboard forward, which listens on loopback).
    public var namespace: String
    /// `NAME=value` pairs added to the inherited environment.
    public var environment: [String]
    public var argv: [String]
    public var log: String
    public var ready: Ready

    /// `ip netns exec NS setpriv --pdeathsig KILL env … PROGRAM ARGS`. Every step execs, so the
    /// runner's child is the program itself (signals reach it directly), and the parent-death
    /// signal kills it should the runner die without tearing down.
    public var commandLine: [String] {
        (namespace.isEmpty ? [] : ["ip", "netns", "exec", namespace]) + ["setpriv", "--pdeathsig", "KILL"]
            + (environment.isEmpty ? [] : ["env"] + environment) + argv
    }
}

/// The gateway agent's well-known ports inside its namespace.
public enum GatewayPorts {
    public static let device = 8070
    public static let admin = 8071
    public static let gossip = 7946
    public static let adminURL = "http://127.0.0.1:\(admin)"
}

/// Builds every command and process of a lab from its plan, state paths and binaries. Pure.
public struct Launches: Sendable {
    public let plan: LabPlan
    public let paths: LabPaths
    public let binaries: LabBinaries
    /// Pass the mesh flags (gossip, site keyring, mDNS discovery, joins) to gateways.
    public let mesh: Bool

    public init(plan: LabPlan, paths: LabPaths, binaries: LabBinaries, mesh: Bool = true) {
        self.plan = plan
        self.paths = paths
        self.binaries = binaries
        self.mesh = mesh
    }

    var topology: Topology { plan.topology }
    var layout: LabLayout { plan.layout }

    // MARK: Origin

    /// The origin's base URL, as upstream gateways reach it.
    public var originURL: String? {
        guard let origin = topology.origin, let host = layout.origin, let address = host.attachments.first?.address else { return nil }
        return "http://\(address):\(origin.port)"
    }

    /// Creates the lab's site keyring (runs in the host namespace: it only writes a file).
    public func siteKeyring(at path: String, site: String) -> Invocation {
        Invocation([binaries.otamesh, "keys", "site-keyring", "--out", path, "--site", site])
    }

    /// The rollout admins' keys and the site trust file naming the trusted ones (threshold
    /// ``LabAdmin/threshold``); the rogue key stays outside. Host namespace: files only.
    public func adminSetup(site: String) -> [Invocation] {
        var commands = LabAdmin.allCases.map { admin in
            Invocation([binaries.otamesh, "keys", "generate", "--name", admin.rawValue, "--dir", paths.admin])
        }
        commands.append(
            Invocation(
                [
                    binaries.otamesh, "keys", "site-trust", "--site", site, "--threshold", "\(LabAdmin.threshold)",
                    "-o", paths.siteTrust,
                ] + LabAdmin.trusted.map(paths.adminPublicKey)))
        return commands
    }

    /// `otamesh rollout ARGS` against one gateway's admin API, from inside its namespace, with
    /// its admin token file and (unless unsigned) an admin's key file.
    public func rolloutCommand(_ arguments: [String], at gateway: String, signer: LabAdmin?, unsigned: Bool = false) -> Invocation? {
        guard let host = layout.gateway(gateway) else { return nil }
        var argv =
            ["ip", "netns", "exec", host.namespace, binaries.otamesh, "rollout"] + arguments
            + ["--admin", GatewayPorts.adminURL, "--token-file", paths.adminToken(gateway)]
        if unsigned {
            argv.append("--unsigned")
        } else if let signer {
            argv += ["--key", paths.adminKey(signer)]
            if signer == .rogue { argv.append("--skip-admin-check") }
        }
        return Invocation(argv, mayFail: true)
    }

    /// Builds the TUF repository with otamesh itself, in the origin's namespace: init, one add
    /// per release (ESP32 images made by otamesh-devicesim first), publish into the served site.
    public var originBuild: [Invocation] {
        guard let origin = topology.origin, let host = layout.origin else { return [] }
        let exec = ["ip", "netns", "exec", host.namespace]
        var commands = [Invocation(exec + [binaries.otamesh, "release", "init", "--repo", paths.originRepository])]
        for (index, release) in origin.releases.enumerated() {
            let image: String
            switch release.image {
            case .file(let file):
                image = file.hasPrefix("/") ? file : "\(topology.baseDirectory)/\(file)"
            case .made(let chip, let version, let size):
                image = "\(paths.originImages)/\(index)-\(chip)-\(version).bin"
                commands.append(
                    Invocation(
                        exec + [
                            binaries.devicesim, "make-image", "--chip", chip, "--version", version, "--size", "\(size)",
                            "--seed", "\(index + 1)", "-o", image,
                        ]))
            }
            commands.append(
                Invocation(
                    exec + [
                        binaries.otamesh, "release", "add", "--repo", paths.originRepository,
                        "--path", release.path, image,
                    ]))
            if let app = release.app {
                let spec = app.hasPrefix("/") ? app : "\(topology.baseDirectory)/\(app)"
                commands.append(
                    Invocation(
                        exec + [binaries.otamesh, "release", "add-app", "--repo", paths.originRepository, "--firmware", release.path, spec]))
            }
        }
        commands.append(Invocation(exec + [binaries.otamesh, "release", "publish", "--repo", paths.originRepository, paths.originSite]))
        return commands
    }

    /// Local image files of the releases, to hash for the expected image set.
    public var releaseImages: [String] {
        guard let origin = topology.origin else { return [] }
        return origin.releases.enumerated().map { index, release in
            switch release.image {
            case .file(let file): file.hasPrefix("/") ? file : "\(topology.baseDirectory)/\(file)"
            case .made(let chip, let version, _): "\(paths.originImages)/\(index)-\(chip)-\(version).bin"
            }
        }
    }

    /// python's http.server on the origin's address, serving the published site.
    public var originServer: Launch? {
        guard let origin = topology.origin, let host = layout.origin, let address = host.attachments.first?.address else { return nil }
        return Launch(
            label: "origin", namespace: host.namespace, environment: ["PYTHONUNBUFFERED=1"],
            argv: ["python3", "-m", "http.server", "\(origin.port)", "--bind", "\(address)", "--directory", paths.originSite],
            log: paths.log("origin"), ready: .logContains("Serving HTTP on"))
    }

    // MARK: Gateway namespaces

    /// A gateway's host, or a device host (label `devices-NETWORK`) that runs its own bus and
    /// avahi-daemon because push twins there announce themselves.
    func mdnsHost(_ name: String) -> LabLayout.Host? {
        layout.gateway(name) ?? layout.deviceHosts.first { $0.label == name }
    }

    /// Device hosts whose twins announce themselves by mDNS (push groups on their network).
    public var announcingDeviceHosts: [String] {
        layout.deviceHosts.filter { host in topology.devices.contains { $0.isPush && $0.network == host.attachments.first?.network } }
            .map(\.label)
    }

    public func dbus(_ gateway: String) -> Launch? {
        guard let host = mdnsHost(gateway) else { return nil }
        return Launch(
            label: "\(gateway).dbus", namespace: host.namespace, environment: [],
            argv: ["dbus-daemon", "--config-file=\(paths.dbusConfig(gateway))", "--nofork", "--nopidfile"],
            log: paths.log("\(gateway).dbus"), ready: .fileExists(paths.busSocket(gateway)))
    }

    /// avahi-daemon in a private mount namespace whose /run/avahi-daemon (pid file and socket)
    /// is the gateway's own directory, so daemons in different namespaces never collide.
    public func avahi(_ gateway: String) -> Launch? {
        guard let host = mdnsHost(gateway) else { return nil }
        let script =
            "mkdir -p /run/avahi-daemon && mount --bind \"$1\" /run/avahi-daemon && "
            + "exec avahi-daemon -f \"$2\" --no-drop-root --no-chroot --no-rlimits"
        return Launch(
            label: "\(gateway).avahi", namespace: host.namespace, environment: ["DBUS_SYSTEM_BUS_ADDRESS=\(paths.busAddress(gateway))"],
            argv: [
                "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "avahi-lab",
                paths.avahiRuntime(gateway), paths.avahiConfig(gateway),
            ],
            log: paths.log("\(gateway).avahi"), ready: .logContains("Server startup complete"))
    }

    public func avahiConfig(_ gateway: String) -> String? {
        guard let host = mdnsHost(gateway) else { return nil }
        return DaemonConfig.avahi(hostName: gateway, interfaces: host.attachments.map(\.interface))
    }

    /// The gateway agent, with its namespace's bus and quiet dns_sd compatibility warnings.
    /// The narrated demo's window on the site dashboard: `socat` in the host's namespace listens on
    /// 127.0.0.1:`port` and, per connection, joins `name`'s namespace to reach its admin listener
    /// there (127.0.0.1:8071). Only loopback on the host and the lab's own namespace are involved.
    public func dashboardForward(_ name: String, port: Int) -> Launch? {
        guard let host = layout.gateway(name) else { return nil }
        return Launch(
            label: "dashboard", namespace: "", environment: [],
            argv: [
                "socat", "TCP-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork",
                "EXEC:ip netns exec \(host.namespace) socat STDIO TCP\\:127.0.0.1\\:\(GatewayPorts.admin)",
            ], log: paths.log("dashboard"), ready: .immediately)
    }

    public func gateway(_ name: String) -> Launch? {
        guard let host = layout.gateway(name), let arguments = gatewayArguments(name) else { return nil }
        return Launch(
            label: name, namespace: host.namespace,
            environment: ["DBUS_SYSTEM_BUS_ADDRESS=\(paths.busAddress(name))", "AVAHI_COMPAT_NOWARN=1"],
            argv: [binaries.otamesh] + arguments, log: paths.log(name), ready: .logContains("admin API + metrics: "))
    }

    /// `otamesh agent …` for one gateway (without the program name). The one place the agent's
    /// flags are spelled: adapt here when they change.
    public func gatewayArguments(_ name: String) -> [String]? {
        guard let gateway = topology.gateway(named: name), let advertise = layout.advertiseAddress(of: name) else { return nil }
        var arguments = [
            "agent", "--data-dir", paths.dataDirectory(name), "--node-name", name,
            "--admin-listen", "127.0.0.1:\(GatewayPorts.admin)", "--device-listen", "0.0.0.0:\(GatewayPorts.device)",
            "--device-tls-listen", "off",
        ]
        if mesh {
            arguments += [
                "--gossip-listen", "0.0.0.0:\(GatewayPorts.gossip)", "--gossip-advertise", "\(advertise)",
                "--site-keyring", paths.keyring, "--discovery", "mdns",
            ]
            for peer in gateway.join {
                if let address = layout.address(of: peer, from: name) { arguments += ["--join", "\(address):\(GatewayPorts.gossip)"] }
            }
        }
        if gateway.upstream, let origin = originURL {
            arguments += [
                "--upstream-metadata-url", "\(origin)/metadata", "--upstream-targets-url", "\(origin)/targets",
                "--upstream-interval", "2s",
            ]
        }
        if topology.origin != nil { arguments += ["--trust-root", paths.trustRoot] }
        // Rollouts need gossip and the site trust (the lab's admins).
        if mesh { arguments += ["--site-trust", paths.siteTrust] }
        return arguments
    }

    /// A gateway's plain-HTTP device URL as seen from a network it is on.
    public func deviceURL(_ gateway: String, on network: String) -> String? {
        layout.gateway(gateway)?.attachment(on: network).map { "http://\($0.address):\(GatewayPorts.device)" }
    }

    // MARK: Devices

    /// One otamesh-devicesim per device group, in its segment's namespace, polling its gateway
    /// for a week (the lab ends it sooner). MACs are locally administered and unique per group.
    public func devices(_ group: DeviceGroup) -> Launch? {
        guard let host = layout.deviceHost(on: group.network), let url = deviceURL(group.gateway, on: group.network),
            let index = topology.devices.firstIndex(where: { $0.name == group.name })
        else { return nil }
        if group.isPush, let address = host.attachments.first?.address {
            // Twins on their own ports, announced through the device host's avahi-daemon.
            var argv = [
                binaries.devicesim, "serve", "--family", group.family.rawValue, "--count", "\(group.count)",
                "--listen-base", "\(address):\(Self.pushBasePort(group: index))", "--duration", "604800",
                "--announce", "--name-prefix", group.name, "--variant", group.variant ?? "esp32",
                "--step-ms", "100", "--reboot-delay-ms", "200", "--reboot-ms", "1000",
            ]
            if let version = group.version { argv += ["--version", version] }
            if let fail = group.fail { argv += ["--fail", fail] }
            // ArduinoOTA twins serve /version on a second port per device, announced as TXT http_port.
            if group.family == .arduinoOTA { argv += ["--http-base", "\(Self.pushBasePort(group: index) + 500)"] }
            return Launch(
                label: "dev-\(group.name)", namespace: host.namespace,
                environment: ["DBUS_SYSTEM_BUS_ADDRESS=\(paths.busAddress(host.label))", "AVAHI_COMPAT_NOWARN=1"], argv: argv,
                log: paths.log("dev-\(group.name)"), ready: .logContains("\"listening\""))
        }
        var argv = [
            binaries.devicesim, "run", "--family", group.family.rawValue, "--count", "\(group.count)", "--gateway", url,
            "--mac-base", Self.macBase(group: index), "--interval", "\(group.interval)", "--deadline", "604800",
            "--seed", "\(index + 1)",
        ]
        if let version = group.version { argv += ["--version", version] }
        if let hardware = group.hardware { argv += ["--hardware", hardware] }
        argv += group.faults.map(\.flag)
        if DeviceGroup.tlsFamilies.contains(group.family) { argv.append("--insecure-http") }
        if let filesystem = group.filesystem { argv += ["--filesystem", filesystem] }
        return Launch(
            label: "dev-\(group.name)", namespace: host.namespace, environment: [], argv: argv,
            log: paths.log("dev-\(group.name)"), ready: .immediately)
    }

    /// The registry ids of a polling group's devices: their station MACs, lower case
    /// (`--mac-base` counted up, as otamesh-devicesim derives them).
    public func deviceIDs(_ group: DeviceGroup) -> [String] {
        guard !group.isPush, let index = topology.devices.firstIndex(where: { $0.name == group.name }) else { return [] }
        // The group's base (one place for the layout), its low 24 bits counted up.
        let base = Self.macBase(group: index).split(separator: ":").compactMap { UInt32($0, radix: 16) }
        return (0..<group.count).map { device in
            let low = (base[3] << 16 | base[4] << 8 | base[5]) &+ UInt32(device)
            return String(format: "%02x:%02x:%02x:%02x:%02x:%02x", base[0], base[1], base[2], (low >> 16) & 0xff, (low >> 8) & 0xff, low & 0xff)
        }
    }

    /// `otamesh device config import CSV` at a gateway, through its admin API.
    public func configureCommand(csv: String, at gateway: String) -> Invocation? {
        guard let host = layout.gateway(gateway) else { return nil }
        return Invocation(
            [
                "ip", "netns", "exec", host.namespace, binaries.otamesh, "device", "config", "import", "--admin", GatewayPorts.adminURL,
                "--token-file", paths.adminToken(gateway), csv,
            ], mayFail: true)
    }

    /// Push twins of group `index` listen from this port up (groups ≤ 1000 devices; arduino-ota
    /// groups ≤ 500, their /version servers taking the upper half).
    static func pushBasePort(group index: Int) -> Int { 10_000 + 1000 * index }

    /// `02:77:00:GG:00:00`-style: locally administered, group `GG`, devices counting up from it.
    static func macBase(group: Int) -> String {
        let high = (group >> 8) & 0xff
        let low = group & 0xff
        return String(format: "02:77:%02X:%02X:00:00", high, low)
    }
}
