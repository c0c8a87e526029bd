import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How a lab runs: where its state goes and which gateway flags it passes.
public struct LabOptions: Sendable {
    public var stateRoot: String
    /// Pass the mesh flags to gateways (off until the agent has them).
    public var mesh: Bool
    /// Print every command.
    public var verbose: Bool
    /// Narrate rollouts for a watcher: stages, progress per gateway, the halt and its spread.
    public var narrate: Bool

    public init(stateRoot: String, mesh: Bool = true, verbose: Bool = false, narrate: Bool = false) {
        self.stateRoot = stateRoot
        self.mesh = mesh
        self.verbose = verbose
        self.narrate = narrate
    }
}

/// The executor: runs a ``LabPlan`` and the lab's processes, runs scenario steps, and tears
/// everything down. Create, use and drop it on one thread: the children's parent-death signal
/// is tied to the thread that started them.
public final class LabRunner {
    public let plan: LabPlan
    public let paths: LabPaths
    public let launches: Launches
    let shell: Shell
    let supervisor: Supervisor
    let stop: StopSignal
    let print: (String) -> Void
    let clock = Date()

    /// Current link shape of each network (scenario steps change them).
    var shapes: [String: LinkShape]
    public private(set) var shapingMode: ShapingMode?
    /// SHA-256 hex of every origin release image.
    public private(set) var expectedImages: Set<String> = []
    /// Gateways the scenario has stopped or killed.
    var down: Set<String> = []
    /// The delay last warned about per network (fallback mode warns once per value).
    var delayWarned: [String: Double] = [:]
    /// Set once this runner wrote the run record: from then on the namespaces are its own to
    /// remove. Before that (another run is up, say) teardown must touch nothing.
    private var ownsLab = false
    let narrate: Bool
    /// Rollouts the scenario started, by their scenario name, in order.
    var rollouts: [String: RolloutTrack] = [:]
    var rolloutOrder: [String] = []
    /// Device groups as the scenario last (re)started them.
    var deviceGroups: [String: DeviceGroup] = [:]
    /// `configure` steps so far (each writes its own CSV).
    var configureCount = 0
    /// Rollout poll rounds: how many, and their summed duration (the times' resolution).
    var pollRounds = (count: 0, seconds: 0.0)
    var lastProgress = Date.distantPast
    /// The progress line last printed per rollout (narration prints a line only when it changed).
    var progressPrinted: [String: String] = [:]

    public init(
        topology: Topology, binaries: LabBinaries, options: LabOptions, stop: StopSignal,
        print: @escaping (String) -> Void
    ) throws(LabError) {
        do { plan = try LabPlan(topology) } catch { throw LabError.topology(error) }
        paths = LabPaths(root: options.stateRoot)
        launches = Launches(plan: plan, paths: paths, binaries: binaries, mesh: options.mesh)
        shell = Shell(scratch: NSTemporaryDirectory(), verbose: options.verbose)
        supervisor = Supervisor(stop: stop)
        self.stop = stop
        self.print = print
        narrate = options.narrate
        deviceGroups = Dictionary(uniqueKeysWithValues: topology.devices.map { ($0.name, $0) })
        shapes = Dictionary(uniqueKeysWithValues: topology.networks.map { ($0.name, $0.shape) })
    }

    var topology: Topology { plan.topology }
    var layout: LabLayout { plan.layout }

    /// Seconds since the runner started.
    var elapsed: Double { Date().timeIntervalSince(clock) }

    /// Gateways that should be running now.
    public var runningGateways: [String] { topology.gateways.map(\.name).filter { !down.contains($0) } }

    // MARK: Up

    /// Brings the whole lab up; on any failure (or a signal) tears down what exists and rethrows.
    public func up() throws(LabError) {
        do {
            try prepareState()
            try createNetwork()
            try applyInitialShaping()
            if launches.mesh {
                try createSiteKeyring(at: paths.keyring, site: topology.site)
                try createAdmins()
            }
            try startOrigin()
            try startGateways()
            if narrate { startDashboardForward() }
            try startDevices()
        } catch {
            tearDown()
            throw error
        }
    }

    func checkStop() throws(LabError) {
        if let signal = stop.requested { throw LabError.interrupted(signal: signal) }
    }

    /// Clears this lab's earlier state (only the paths the lab writes) and records the run.
    func prepareState() throws(LabError) {
        if let record = LabRecord.read(paths.record), record.runnerIsAlive {
            throw LabError.state("lab \(record.name) is running from \(paths.root) (pid \(record.runner)); stop it or run `otamesh lab down`")
        }
        let existing = NamespaceCleaner(shell: shell).existing(prefix: layout.prefix)
        guard existing.isEmpty else { throw LabError.busy(namespaces: existing) }
        let files = FileManager.default
        // A soak that died left its small disk mounted on a gateway's data directory.
        for mount in Self.mounts(under: "\(paths.root)/gw/") { _ = try? shell.run(Invocation(["umount", "-l", mount], mayFail: true)) }
        for path in [paths.logs, "\(paths.root)/gw", paths.origin, paths.keyring, paths.admin, paths.rollouts, paths.record] {
            try? files.removeItem(atPath: path)
        }
        do {
            try files.createDirectory(atPath: paths.logs, withIntermediateDirectories: true)
            try files.createDirectory(atPath: paths.originImages, withIntermediateDirectories: true)
        } catch {
            throw LabError.state("cannot create \(paths.root): \((error as NSError).localizedDescription)")
        }
        let longest = topology.gateways.map { paths.busSocket($0.name).utf8.count }.max() ?? 0
        guard longest < 100 else { throw LabError.state("state directory \(paths.root) is too deep for unix sockets; use a shorter --state") }
        let started = ISO8601DateFormatter().string(from: Date())
        try LabRecord(name: topology.name, prefix: layout.prefix, namespaces: layout.namespaces, runner: getpid(), started: started)
            .write(paths.record)
        ownsLab = true
    }

    /// Mount points below `prefix` (from /proc/self/mounts; octal escapes left as they are,
    /// the lab's paths have none).
    static func mounts(under prefix: String) -> [String] {
        let table = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let point = String(fields[1])
            return point.hasPrefix(prefix) ? point : nil
        }.sorted().reversed()
    }

    func createNetwork() throws(LabError) {
        for invocation in plan.setup {
            try checkStop()
            try shell.run(invocation)
        }
        print("network: \(layout.namespaces.count) namespaces, \(layout.bridges.count) bridges in \(layout.switchNamespace)")
    }

    /// Tries netem once; without it, rate goes to tbf and loss to nftables, and delay is dropped
    /// with one warning per network that asks for it.
    func applyInitialShaping() throws(LabError) {
        let probe = try shell.run(Invocation(plan.netemProbe.argv, mayFail: true))
        try shell.run(plan.probeCleanup)
        let mode: ShapingMode = probe.status == 0 ? .netem : .fallback
        shapingMode = mode
        print("link shaping: \(mode.summary)")
        for network in topology.networks where !network.shape.isEmpty {
            try applyShape(network.name, network.shape)
        }
    }

    func applyShape(_ network: String, _ shape: LinkShape) throws(LabError) {
        guard let mode = shapingMode else { return }
        try shell.run(plan.shaping(network, shape, mode: mode))
        shapes[network] = shape
        if mode == .fallback, let delay = shape.delay, delay > 0, delayWarned[network] != delay {
            delayWarned[network] = delay
            print("warning: network \(network): delay \(LabDuration.text(delay)) is not applied (this kernel has no netem)")
        }
    }

    /// The site keyring every gateway shares. Written here until `otamesh keys site-keyring
    /// --out FILE --site SITE` exists; then this becomes one shell.run of that command.
    /// The site keyring every gateway of the lab shares, made by `otamesh keys site-keyring`.
    func createSiteKeyring(at path: String, site: String) throws(LabError) {
        unlink(path)
        try shell.run(launches.siteKeyring(at: path, site: site))
    }

    /// The rollout admins (admin-a, admin-b trusted with threshold 2; rogue not) and the site
    /// trust file every gateway starts with, made by `otamesh keys generate` / `keys site-trust`.
    func createAdmins() throws(LabError) {
        do { try FileManager.default.createDirectory(atPath: paths.admin, withIntermediateDirectories: true) } catch {
            throw LabError.state("cannot create \(paths.admin): \((error as NSError).localizedDescription)")
        }
        try shell.run(launches.adminSetup(site: topology.site))
    }

    func startOrigin() throws(LabError) {
        guard let server = launches.originServer, let url = launches.originURL else { return }
        for invocation in launches.originBuild {
            try checkStop()
            try shell.run(invocation, timeout: 120)
        }
        var digests: Set<String> = []
        for image in launches.releaseImages {
            guard let data = FileManager.default.contents(atPath: image) else { throw LabError.state("cannot read release image \(image)") }
            digests.insert(SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined())
        }
        expectedImages = digests
        try supervisor.start(server)
        try supervisor.waitReady([server], timeout: 20)
        print("origin: \(url) in \(server.namespace) (\(topology.origin?.releases.count ?? 0) releases, site \(topology.site))")
    }

    /// Buses first, then avahi-daemons, then gateways; each kind started together and awaited
    /// with one deadline that grows with the lab's size.
    func startGateways() throws(LabError) {
        let names = topology.gateways.map(\.name)
        let mdnsHosts = names + launches.announcingDeviceHosts
        let files = FileManager.default
        let systemBus = try? String(contentsOfFile: DaemonConfig.systemBusConfig, encoding: .utf8)
        for name in mdnsHosts {
            do {
                try files.createDirectory(atPath: paths.dataDirectory(name), withIntermediateDirectories: true)
                try files.createDirectory(atPath: paths.avahiRuntime(name), withIntermediateDirectories: true)
            } catch {
                throw LabError.state("cannot create \(paths.gateway(name)): \((error as NSError).localizedDescription)")
            }
            let socket = paths.busSocket(name)
            let bus = systemBus.map { DaemonConfig.dbus(adapting: $0, socket: socket) } ?? DaemonConfig.dbusMinimal(socket: socket)
            try write(bus, to: paths.dbusConfig(name))
            try write(launches.avahiConfig(name) ?? "", to: paths.avahiConfig(name))
        }
        let scale = Double(names.count)
        for (kind, make, timeout) in [
            ("dbus", launches.dbus, 15 + scale),
            ("avahi", launches.avahi, 20 + scale),
            ("gateway", launches.gateway, 60 + 3 * scale),
        ] as [(String, (String) -> Launch?, Double)] {
            try checkStop()
            let started = (kind == "gateway" ? names : mdnsHosts).compactMap(make)
            for launch in started { try supervisor.start(launch) }
            try supervisor.waitReady(started, timeout: timeout)
            if kind == "gateway" { print("gateways: \(names.count) up") }
        }
    }

    /// Port of the narrated demo's dashboard on the host's loopback.
    static let dashboardPort = 18071

    /// For a watcher: the first gateway's dashboard on the host's loopback (needs socat; a
    /// missing socat or a busy port only costs the window, never the demo).
    func startDashboardForward() {
        guard let first = topology.gateways.first?.name, let launch = launches.dashboardForward(first, port: Self.dashboardPort),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/socat")
        else { return }
        guard Self.loopbackPortFree(Self.dashboardPort) else {
            print("dashboard: not forwarded (127.0.0.1:\(Self.dashboardPort) is in use)")
            return
        }
        do {
            try supervisor.start(launch)
            print(
                "dashboard: http://127.0.0.1:\(Self.dashboardPort)/ui/ (\(first)'s; sign in with the token in \(paths.dataDirectory(first))/keys/admin.token)")
        } catch {
            print("dashboard: not forwarded (\(error))")
        }
    }

    /// Whether a listener could bind 127.0.0.1:`port` now.
    static func loopbackPortFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func startDevices() throws(LabError) {
        let started = topology.devices.compactMap(launches.devices)
        for launch in started { try supervisor.start(launch) }
        if !started.isEmpty { print("devices: \(topology.devices.reduce(0) { $0 + $1.count }) in \(started.count) groups") }
    }

    func write(_ text: String, to path: String) throws(LabError) {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else { throw LabError.state("cannot write \(path)") }
    }

    /// Lines describing where everything is, for `lab up`.
    public var directory: [String] {
        var lines: [String] = []
        if let host = layout.origin, let url = launches.originURL { lines.append("  origin    \(host.namespace)  \(url)") }
        for host in layout.gateways {
            let addresses = host.attachments.map { "\($0.network) \($0.address)" }.joined(separator: ", ")
            let upstream = topology.gateway(named: host.label)?.upstream == true ? "  upstream" : ""
            lines.append("  \(host.label)  \(host.namespace)  \(addresses)\(upstream)")
            if let first = host.attachments.first {
                lines.append(
                    "      devices http://\(first.address):\(GatewayPorts.device)  admin \(GatewayPorts.adminURL) "
                        + "(ip netns exec \(host.namespace) curl -s \(GatewayPorts.adminURL)/healthz)")
            }
        }
        for host in layout.deviceHosts {
            let groups = topology.devices.filter { $0.network == host.attachments.first?.network }
            lines.append("  \(host.label)  \(host.namespace)  " + groups.map { "\($0.name) ×\($0.count) → \($0.gateway)" }.joined(separator: ", "))
        }
        lines.append("  logs and state: \(paths.root)")
        return lines
    }

    /// Stays up until a signal (or `limit` seconds), reporting children that exit on their own.
    public func hold(limit: Double) {
        Deadline.poll(timeout: limit, interval: 0.2) {
            reportUnexpectedExits()
            return stop.requested != nil
        }
    }

    @discardableResult
    func reportUnexpectedExits() -> Int {
        let exits = supervisor.unexpectedExits()
        for exit in exits {
            print("! \(exit.label) exited on its own (status \(exit.status)): \(supervisor.logTail(exit.label, lines: 3))")
        }
        return exits.count
    }

    // MARK: Down

    /// Stops every child, kills anything left in the lab's namespaces, deletes them and the run
    /// record. Safe to call more than once and after a partial setup; does nothing to
    /// namespaces this runner did not claim.
    public func tearDown() {
        supervisor.stopAll(grace: 15)
        guard ownsLab else { return }
        let cleaner = NamespaceCleaner(shell: shell)
        let present = cleaner.all().filter { layout.namespaces.contains($0) }
        let killed = cleaner.killProcesses(in: present, grace: 5)
        if killed > 0 { print("teardown: killed \(killed) leftover processes") }
        for invocation in plan.teardown { _ = try? shell.run(invocation) }
        let left = cleaner.all().filter { layout.namespaces.contains($0) }
        if left.isEmpty {
            unlink(paths.record)
            print("lab \(topology.name) torn down (logs in \(paths.logs))")
        } else {
            print("teardown: could not remove \(left.joined(separator: ", ")); run `otamesh lab down`")
        }
        ownsLab = false
    }
}
