/// Where everything of a topology lives: one network namespace per host (origin, each gateway,
/// each device segment), a switch namespace holding one bridge per network, veth pairs between
/// them, and every address. Pure and deterministic: the same topology gives the same layout.
///
/// Names stay within Linux's 15-character interface limit: namespaces are
/// `otl-<short>-sw|or|g<N>|d<N>`, bridges `br-<network>`, switch ports `v<host>n<network>`, and
/// inside a host each interface is named after its network.
public struct LabLayout: Sendable, Equatable {
    public static let namespacePrefix = "otl-"
    /// Host numbers within each subnet, unless an address is given explicitly.
    public static let originHost = 1
    public static let firstGatewayHost = 11
    public static let deviceHost = 101

    public struct Attachment: Sendable, Equatable {
        public var network: String
        public var networkIndex: Int
        /// The interface inside the host's namespace (named after the network).
        public var interface: String
        /// The veth end in the switch namespace, a port of ``bridge``.
        public var port: String
        public var bridge: String
        public var address: IPv4Address
        public var prefixLength: Int
    }

    public enum Role: Sendable, Equatable {
        case origin
        case gateway(String)
        /// The devices of one device segment, all in one namespace.
        case devices(network: String)
    }

    public struct Host: Sendable, Equatable {
        public var role: Role
        public var label: String
        public var namespace: String
        /// Numbers the switch ports (origin 0, gateways 1…, device hosts after).
        public var index: Int
        public var attachments: [Attachment]

        public func attachment(on network: String) -> Attachment? { attachments.first { $0.network == network } }
    }

    /// `otl-<short>-`: every namespace of this lab starts with it.
    public let prefix: String
    public let switchNamespace: String
    public let origin: Host?
    public let gateways: [Host]
    public let deviceHosts: [Host]
    /// Bridges in network order.
    public let bridges: [(network: String, bridge: String)]

    public static func == (lhs: LabLayout, rhs: LabLayout) -> Bool {
        lhs.prefix == rhs.prefix && lhs.hosts == rhs.hosts && lhs.bridges.map(\.bridge) == rhs.bridges.map(\.bridge)
    }

    /// Every host namespace (not the switch), origin first.
    public var hosts: [Host] { (origin.map { [$0] } ?? []) + gateways + deviceHosts }

    /// Every namespace of the lab, the switch first.
    public var namespaces: [String] { [switchNamespace] + hosts.map(\.namespace) }

    public func gateway(_ name: String) -> Host? { gateways.first { $0.label == name } }

    public func deviceHost(on network: String) -> Host? { deviceHosts.first { $0.role == .devices(network: network) } }

    /// The ports of one network's bridge, in host order.
    public func ports(of network: String) -> [String] {
        hosts.compactMap { $0.attachment(on: network)?.port }
    }

    /// The address a gateway gossips from: on `backbone` if it is attached there, else its first network.
    public func advertiseAddress(of gateway: String) -> IPv4Address? {
        guard let host = self.gateway(gateway) else { return nil }
        return (host.attachment(on: "backbone") ?? host.attachments.first)?.address
    }

    /// The address `from` uses to reach gateway `to`: on a shared network, `backbone` first.
    public func address(of to: String, from: String) -> IPv4Address? {
        guard let target = gateway(to), let source = gateway(from) else { return nil }
        let shared = target.attachments.filter { attachment in source.attachment(on: attachment.network) != nil }
        return (shared.first { $0.network == "backbone" } ?? shared.first)?.address
    }

    public init(_ topology: Topology) throws(TopologyError) {
        prefix = "\(Self.namespacePrefix)\(topology.shortName)-"
        switchNamespace = prefix + "sw"
        bridges = topology.networks.map { ($0.name, "br-\($0.name)") }
        let networkIndex = Dictionary(uniqueKeysWithValues: topology.networks.enumerated().map { ($1.name, $0) })
        var taken: [String: [IPv4Address: String]] = [:]

        func attach(
            _ network: String, hostIndex: Int, explicit: IPv4Address?, number: Int, owner: String, key: String
        ) throws(TopologyError) -> Attachment {
            guard let net = topology.network(named: network), let index = networkIndex[network] else {
                throw TopologyError(file: topology.source, key: key, reason: "unknown network '\(network)'")
            }
            let address: IPv4Address
            if let explicit {
                guard net.subnet.containsHost(explicit) else {
                    throw TopologyError(file: topology.source, key: key, reason: "\(explicit) is not a host address of \(network) (\(net.subnet))")
                }
                address = explicit
            } else {
                guard let assigned = net.subnet.host(number) else {
                    throw TopologyError(
                        file: topology.source, key: key,
                        reason: "host .\(number) does not fit in \(network) (\(net.subnet)); give an explicit address")
                }
                address = assigned
            }
            if let other = taken[network]?[address] {
                throw TopologyError(file: topology.source, key: key, reason: "\(address) on \(network) is already \(other)'s")
            }
            taken[network, default: [:]][address] = owner
            return Attachment(
                network: network, networkIndex: index, interface: network, port: "v\(hostIndex)n\(index)",
                bridge: "br-\(network)", address: address, prefixLength: net.subnet.prefixLength)
        }

        if let origin = topology.origin {
            let attachment = try attach(
                origin.network, hostIndex: 0, explicit: origin.address, number: Self.originHost,
                owner: "the origin", key: origin.address == nil ? "origin" : "origin.address")
            self.origin = Host(role: .origin, label: "origin", namespace: prefix + "or", index: 0, attachments: [attachment])
        } else {
            origin = nil
        }
        var gateways: [Host] = []
        for (index, gateway) in topology.gateways.enumerated() {
            var attachments: [Attachment] = []
            for network in gateway.networks {
                let explicit = gateway.addresses[network]
                attachments.append(
                    try attach(
                        network, hostIndex: index + 1, explicit: explicit, number: Self.firstGatewayHost + index,
                        owner: "gateway \(gateway.name)",
                        key: explicit == nil ? "gateways.\(gateway.name)" : "gateways.\(gateway.name).address.\(network)"))
            }
            gateways.append(
                Host(
                    role: .gateway(gateway.name), label: gateway.name, namespace: prefix + "g\(index + 1)",
                    index: index + 1, attachments: attachments))
        }
        self.gateways = gateways
        var deviceHosts: [Host] = []
        let segments = topology.networks.map(\.name).filter { network in topology.devices.contains { $0.network == network } }
        for network in segments {
            let hostIndex = topology.gateways.count + 1 + deviceHosts.count
            let key = "devices[\(topology.devices.firstIndex { $0.network == network } ?? 0)]"
            let attachment = try attach(
                network, hostIndex: hostIndex, explicit: nil, number: Self.deviceHost,
                owner: "the devices", key: key)
            deviceHosts.append(
                Host(
                    role: .devices(network: network), label: "devices-\(network)",
                    namespace: prefix + "d\(networkIndex[network] ?? 0)", index: hostIndex, attachments: [attachment]))
        }
        self.deviceHosts = deviceHosts
        for namespace in [switchNamespace] + hosts.map(\.namespace) where namespace.count > 15 {
            throw TopologyError(file: topology.source, key: "short", reason: "namespace '\(namespace)' is longer than 15 characters")
        }
    }
}
