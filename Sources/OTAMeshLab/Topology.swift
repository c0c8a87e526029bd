/// A lab: L2 networks, an origin TUF repository, gateways, emulated devices and a scenario.
/// Parsed and validated by ``TopologyFile``; addresses are assigned by ``LabLayout``.
public struct Topology: Sendable, Equatable {
    /// Where the topology came from (for messages) and the directory relative paths resolve against.
    public var source: String
    public var baseDirectory: String
    public var name: String
    /// Goes into every namespace name (`otl-<shortName>-g1`), so at most four characters.
    public var shortName: String
    public var site: String
    public var networks: [Network]
    public var origin: Origin?
    public var gateways: [Gateway]
    public var devices: [DeviceGroup]
    public var scenario: [ScenarioStep]

    public func network(named name: String) -> Network? { networks.first { $0.name == name } }
    public func gateway(named name: String) -> Gateway? { gateways.first { $0.name == name } }
}

/// One L2 segment: a bridge in the switch namespace.
public struct Network: Sendable, Equatable {
    public var name: String
    public var subnet: IPv4Subnet
    public var shape: LinkShape

    public init(name: String, subnet: IPv4Subnet, shape: LinkShape = LinkShape()) {
        self.name = name
        self.subnet = subnet
        self.shape = shape
    }
}

/// Rate, delay and loss applied to every port of a network (each packet crosses one port
/// towards its receiver, so it is shaped once per hop).
public struct LinkShape: Sendable, Equatable {
    public var rate: LinkRate?
    /// Seconds.
    public var delay: Double?
    /// 0…100.
    public var lossPercent: Double?

    public init(rate: LinkRate? = nil, delay: Double? = nil, lossPercent: Double? = nil) {
        self.rate = rate
        self.delay = delay
        self.lossPercent = lossPercent
    }

    /// Nothing to shape: no qdisc, no loss rule.
    public var isEmpty: Bool { rate == nil && (delay ?? 0) == 0 && (lossPercent ?? 0) == 0 }

    public var summary: String {
        var parts: [String] = []
        if let rate { parts.append("rate \(rate.text)") }
        if let delay, delay > 0 { parts.append("delay \(LabDuration.text(delay))") }
        if let lossPercent, lossPercent > 0 { parts.append("loss \(LabDuration.number(lossPercent))%") }
        return parts.isEmpty ? "unshaped" : parts.joined(separator: ", ")
    }
}

/// The upstream TUF repository host: built with `otamesh release`, served by python's http.server.
public struct Origin: Sendable, Equatable {
    public var network: String
    public var address: IPv4Address?
    public var port: Int
    public var releases: [Release]
}

public struct Release: Sendable, Equatable {
    public enum Image: Sendable, Equatable {
        /// An image file (relative paths resolve against the topology's directory).
        case file(String)
        /// An ESP32-family image written by `otamesh-devicesim make-image` (`size` body bytes).
        case made(chip: String, version: String, size: Int)
    }

    /// The TUF target path.
    public var path: String
    public var image: Image
}

public struct Gateway: Sendable, Equatable {
    public var name: String
    public var networks: [String]
    /// Reaches the origin and syncs from it (must share the origin's network).
    public var upstream: Bool
    /// Gateways to join statically (where multicast does not reach).
    public var join: [String]
    /// Explicit addresses by network name.
    public var addresses: [String: IPv4Address]
}

/// `count` emulated devices of one family on a device segment, pointed at their gateway.
public struct DeviceGroup: Sendable, Equatable {
    public static let families = ["esp8266-httpupdate", "esp32-httpupdate", "esp-https-ota", "esp8266-fota", "wiphone", "generic"]
    /// Families that talk HTTPS and get `--insecure-http` (the lab's gateways serve plain HTTP).
    public static let tlsFamilies: Set<String> = ["esp-https-ota", "wiphone"]

    public var name: String
    public var network: String
    public var gateway: String
    public var family: String
    public var count: Int
    public var version: String?
    /// Seconds between polls.
    public var interval: Double
}

/// One step of `otamesh lab run`.
public enum ScenarioStep: Sendable, Equatable {
    public enum Condition: Sendable, Equatable {
        /// Every running gateway sees every other running gateway alive, and all hold every origin image.
        case converged
        /// The observers (default: every other running gateway) report the gateway failed (or no
        /// longer list it). Observers make partitions checkable: one side sees the other fail.
        case failed(String, by: [String] = [])
        /// The observers (default: every other running gateway) report the gateway alive.
        case alive(String, by: [String] = [])
    }

    public enum LinkChange: Sendable, Equatable {
        case loss(Double)
        case rate(LinkRate?)
        case delay(Double)
    }

    /// Timeout in seconds.
    case wait(Condition, timeout: Double)
    /// SIGKILL.
    case kill(String)
    /// SIGTERM, then wait for the exit.
    case stop(String)
    case start(String)
    /// Groups of gateways that cannot reach each other (gateways in no group reach everyone).
    case partition([[String]])
    case heal
    case link(network: String, LinkChange)
    /// A soak: time passing is the point (never a stand-in for a condition).
    case sleep(Double)

    public static let defaultWaitTimeout = 60.0

    public var summary: String {
        switch self {
        case .wait(.converged, _): "wait converged"
        case .wait(.failed(let name, let by), _): "wait failed \(name)" + (by.isEmpty ? "" : " by \(by.joined(separator: ","))")
        case .wait(.alive(let name, let by), _): "wait alive \(name)" + (by.isEmpty ? "" : " by \(by.joined(separator: ","))")
        case .kill(let name): "kill \(name)"
        case .stop(let name): "stop \(name)"
        case .start(let name): "start \(name)"
        case .partition(let groups): "partition " + groups.map { "[" + $0.joined(separator: ",") + "]" }.joined(separator: " | ")
        case .heal: "heal"
        case .link(let network, .loss(let percent)): "loss \(network) \(LabDuration.number(percent))%"
        case .link(let network, .rate(let rate)): "rate \(network) \(rate?.text ?? "unlimited")"
        case .link(let network, .delay(let delay)): "delay \(network) \(LabDuration.text(delay))"
        case .sleep(let seconds): "sleep \(LabDuration.text(seconds))"
        }
    }
}
