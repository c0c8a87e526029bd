/// One command the executor runs to completion: an argv (the program is looked up on PATH),
/// optional standard input, and whether a failure is tolerated (cleanup of what may not exist).
public struct Invocation: Sendable, Equatable, CustomStringConvertible {
    public var argv: [String]
    public var stdin: String?
    public var mayFail: Bool

    public init(_ argv: [String], stdin: String? = nil, mayFail: Bool = false) {
        self.argv = argv
        self.stdin = stdin
        self.mayFail = mayFail
    }

    public var description: String { argv.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ") }
}

/// How link shaping is done. `netem` when the kernel has it; otherwise `tbf` for rate and an
/// nftables rule for loss, with delay not applied.
public enum ShapingMode: String, Sendable, Equatable {
    case netem
    case fallback

    public var summary: String {
        switch self {
        case .netem: "tc netem (rate, delay, loss)"
        case .fallback: "tbf rate + nftables loss (no netem in this kernel: delay not applied)"
        }
    }
}

/// The commands that build and remove a lab's network, derived purely from its layout:
/// namespaces, bridges in the switch namespace, veth pairs created from inside the switch
/// namespace straight into each host namespace (nothing is ever created in the host's own
/// namespace), addresses, and no routes beyond the connected subnets.
public struct LabPlan: Sendable {
    public let topology: Topology
    public let layout: LabLayout

    public init(topology: Topology, layout: LabLayout) {
        self.topology = topology
        self.layout = layout
    }

    public init(_ topology: Topology) throws(TopologyError) {
        self.init(topology: topology, layout: try LabLayout(topology))
    }

    /// Setup in order. IPv6 is off in every lab namespace (mDNS and gossip run over IPv4 only).
    public var setup: [Invocation] {
        var commands: [Invocation] = []
        let sw = layout.switchNamespace
        for namespace in layout.namespaces {
            commands.append(Invocation(["ip", "netns", "add", namespace]))
            commands.append(
                Invocation([
                    "ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                    "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                ]))
            commands.append(Invocation(["ip", "-n", namespace, "link", "set", "lo", "up"]))
        }
        for (_, bridge) in layout.bridges {
            commands.append(Invocation(["ip", "-n", sw, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0"]))
            commands.append(Invocation(["ip", "-n", sw, "link", "set", bridge, "up"]))
        }
        for host in layout.hosts {
            for attachment in host.attachments {
                commands.append(
                    Invocation([
                        "ip", "-n", sw, "link", "add", attachment.port, "type", "veth",
                        "peer", "name", attachment.interface, "netns", host.namespace,
                    ]))
                commands.append(Invocation(["ip", "-n", sw, "link", "set", attachment.port, "master", attachment.bridge]))
                commands.append(Invocation(["ip", "-n", sw, "link", "set", attachment.port, "up"]))
                commands.append(
                    Invocation([
                        "ip", "-n", host.namespace, "addr", "add",
                        "\(attachment.address)/\(attachment.prefixLength)", "dev", attachment.interface,
                    ]))
                commands.append(Invocation(["ip", "-n", host.namespace, "link", "set", attachment.interface, "up"]))
            }
        }
        return commands
    }

    /// Teardown: host namespaces in reverse, then the switch. Deleting a namespace removes its
    /// veths and bridges; each step is tolerated to fail (it may never have been created).
    public var teardown: [Invocation] {
        layout.namespaces.reversed().map { Invocation(["ip", "netns", "del", $0], mayFail: true) }
    }

    /// The probe that decides the shaping mode: a netem qdisc on the lab's first switch port,
    /// removed right after by ``probeCleanup`` (before any real shaping is applied).
    public var netemProbe: Invocation {
        Invocation(["tc", "-n", layout.switchNamespace, "qdisc", "replace", "dev", probePort, "root", "netem", "delay", "1ms"])
    }

    public var probeCleanup: Invocation {
        Invocation(["tc", "-n", layout.switchNamespace, "qdisc", "del", "dev", probePort, "root"], mayFail: true)
    }

    private var probePort: String { layout.hosts.first?.attachments.first?.port ?? "lo" }

    /// Commands that make every port of `network` shaped as `shape` (replacing what was there).
    public func shaping(_ network: String, _ shape: LinkShape, mode: ShapingMode) -> [Invocation] {
        let sw = layout.switchNamespace
        let ports = layout.ports(of: network)
        var commands: [Invocation] = []
        switch mode {
        case .netem:
            for port in ports {
                if shape.isEmpty {
                    commands.append(Invocation(["tc", "-n", sw, "qdisc", "del", "dev", port, "root"], mayFail: true))
                    continue
                }
                var argv = ["tc", "-n", sw, "qdisc", "replace", "dev", port, "root", "netem"]
                if let delay = shape.delay, delay > 0 { argv += ["delay", LabDuration.tc(delay)] }
                if let loss = shape.lossPercent, loss > 0 { argv += ["loss", "\(loss)%"] }
                if let rate = shape.rate { argv += ["rate", rate.description] }
                commands.append(Invocation(argv))
            }
        case .fallback:
            for port in ports {
                if let rate = shape.rate {
                    commands.append(
                        Invocation([
                            "tc", "-n", sw, "qdisc", "replace", "dev", port, "root", "tbf",
                            "rate", rate.description, "burst", "\(Self.burstBytes(rate))", "latency", "100ms",
                        ]))
                } else {
                    commands.append(Invocation(["tc", "-n", sw, "qdisc", "del", "dev", port, "root"], mayFail: true))
                }
            }
            commands.append(
                Invocation(
                    ["ip", "netns", "exec", sw, "nft", "-f", "-"],
                    stdin: lossRuleset(network, percent: shape.lossPercent ?? 0, ports: ports)))
        }
        return commands
    }

    /// A token bucket deep enough for the rate at a 250 Hz tick, never below 16 KiB.
    static func burstBytes(_ rate: LinkRate) -> UInt64 { max(rate.bitsPerSecond / 8 / 100, 16 * 1024) }

    /// An nftables netdev table for one network: on each port's egress, drop `percent` of packets
    /// at random. Declared, deleted and re-declared in one transaction, so applying it replaces
    /// any earlier rule and zero percent leaves no table behind.
    func lossRuleset(_ network: String, percent: Double, ports: [String]) -> String {
        let table = "netdev \(Self.lossTable(layout: layout, network: network))"
        var text = "table \(table) {}\ndelete table \(table)\n"
        guard percent > 0, !ports.isEmpty else { return text }
        let threshold = Int((percent * 100).rounded())
        text += "table \(table) {\n"
        for port in ports {
            text += "  chain \(port) {\n"
            text += "    type filter hook egress device \"\(port)\" priority 0; policy accept;\n"
            text += "    numgen random mod 10000 < \(threshold) drop\n"
            text += "  }\n"
        }
        text += "}\n"
        return text
    }

    static func lossTable(layout: LabLayout, network: String) -> String {
        "otlab_loss_\(layout.bridges.firstIndex { $0.network == network } ?? 0)"
    }

    static let partitionTable = "inet otlab_partition"

    /// Cuts the groups apart: in each grouped gateway's namespace, drop traffic to and from
    /// every address of the gateways in the other groups. Gateways in no group are untouched
    /// (an earlier partition of theirs is healed).
    public func partition(_ groups: [[String]]) -> [Invocation] {
        var commands: [Invocation] = []
        let grouped = Set(groups.joined())
        for (index, group) in groups.enumerated() {
            let others = groups.enumerated().filter { $0.offset != index }.flatMap(\.element)
            let blocked = others.compactMap(layout.gateway).flatMap { $0.attachments.map(\.address.description) }
            for name in group {
                guard let host = layout.gateway(name) else { continue }
                let set = blocked.joined(separator: ", ")
                let ruleset = """
                    table \(Self.partitionTable) {}
                    delete table \(Self.partitionTable)
                    table \(Self.partitionTable) {
                      chain input { type filter hook input priority 0; policy accept; ip saddr { \(set) } drop; }
                      chain output { type filter hook output priority 0; policy accept; ip daddr { \(set) } drop; }
                    }

                    """
                commands.append(Invocation(["ip", "netns", "exec", host.namespace, "nft", "-f", "-"], stdin: ruleset))
            }
        }
        for host in layout.gateways where !grouped.contains(host.label) {
            commands.append(healing(host.namespace))
        }
        return commands
    }

    /// Removes every partition rule.
    public var heal: [Invocation] { layout.gateways.map { healing($0.namespace) } }

    private func healing(_ namespace: String) -> Invocation {
        Invocation(
            ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
            stdin: "table \(Self.partitionTable) {}\ndelete table \(Self.partitionTable)\n")
    }
}
