import OTAMeshCommon

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
    /// An app spec file (`otamesh release add-app`, docs/apps.md) declaring this target as an
    /// app version; relative paths resolve against the topology's directory.
    public var app: String?

    public init(path: String, image: Image, app: String? = nil) {
        self.path = path
        self.image = image
        self.app = app
    }
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
    /// What otamesh-devicesim emulates (not yet hawkBit DDI).
    public static let families: [DeviceFamily] = DeviceFamily.pull.filter { $0 != .ddi } + pushFamilies
    /// Families of devices that cannot fetch ("upgrade local"): the lab serves them as
    /// `otamesh-devicesim serve` twins that announce themselves by mDNS; their gateway finds,
    /// probes and pushes to them.
    public static let pushFamilies: [DeviceFamily] = [.projectMM, .httpUpload, .arduinoOTA]
    /// The `fail` faults each push family's twin knows.
    public static let pushFaults: [DeviceFamily: [String]] = [
        .projectMM: ["refuse-501", "refuse-400", "refuse-500", "die-mid-transfer", "reboot-old", "wrong-variant"],
        .httpUpload: ["update-error", "die-mid-transfer", "reboot-old"],
        .arduinoOTA: ["refuse", "die-mid-transfer", "reboot-old", "wrong-variant"],
    ]
    /// Families that talk HTTPS and get `--insecure-http` (the lab's gateways serve plain HTTP).
    public static let tlsFamilies: Set<DeviceFamily> = [.espHTTPSOTA, .wiphone]

    public var name: String
    public var network: String
    public var gateway: String
    public var family: DeviceFamily
    public var count: Int
    public var version: String?
    /// Seconds between polls.
    public var interval: Double
    /// `--hardware` (e.g. `esp32` for generic devices, so a rollout's `hardware=esp32` selects them).
    public var hardware: String?
    /// Faults the devices emulate from the start (``DeviceFault``).
    public var faults: [DeviceFault]
    /// Push twins: the firmware variant they report (default `esp32`).
    public var variant: String?
    /// Push twins: the twin's fault (``pushFaults``), if any.
    public var fail: String?
    /// httpUpdate families: the sketch's filesystem (devicesim `--filesystem`, e.g.
    /// `spiffs:size=0x20000,meta-len=4`), checked after the firmware as `updateFS` does.
    public var filesystem: String?
    /// The families that check a filesystem (httpUpdate's spiffs mode).
    public static let filesystemFamilies: [DeviceFamily] = [.esp8266HTTPUpdate, .esp32HTTPUpdate]

    /// A group of push devices (served twins), not polling ones.
    public var isPush: Bool { Self.pushFamilies.contains(family) }

    public init(
        name: String, network: String, gateway: String, family: DeviceFamily, count: Int, version: String? = nil,
        interval: Double = 5, hardware: String? = nil, faults: [DeviceFault] = [], variant: String? = nil, fail: String? = nil,
        filesystem: String? = nil
    ) {
        self.filesystem = filesystem
        self.variant = variant
        self.fail = fail
        self.name = name
        self.network = network
        self.gateway = gateway
        self.family = family
        self.count = count
        self.version = version
        self.interval = interval
        self.hardware = hardware
        self.faults = faults
    }
}

/// A fault of otamesh-devicesim a device group can be given.
public enum DeviceFault: String, Sendable, Equatable, CaseIterable {
    /// Flip a byte while writing the image (once per device): the device reboots into its old
    /// version and the update counts as failed.
    case corruptFlash = "corrupt-flash"

    /// The devicesim flag.
    public var flag: String { "--\(rawValue)" }
}

/// The lab's rollout admins: two keys the site trusts (threshold 2) and one it does not.
public enum LabAdmin: String, Sendable, Equatable, CaseIterable {
    case adminA = "admin-a"
    case adminB = "admin-b"
    /// Not in the site trust: whatever it signs must be refused.
    case rogue

    public static let trusted: [LabAdmin] = [.adminA, .adminB]
    public static let threshold = 2
}

/// Who signs a rollout command in a scenario: admins in order (the first sends, the others
/// approve), or nobody (sent without a signature; only for refusal checks).
public enum Signers: Sendable, Equatable {
    case admins([LabAdmin])
    case nobody

    public var text: String {
        switch self {
        case .admins(let admins): admins.map(\.rawValue).joined(separator: "+")
        case .nobody: "nobody"
        }
    }

    /// Whether every gateway must refuse a command so signed (outside the trust, or unsigned).
    public var mustBeRefused: Bool {
        switch self {
        case .nobody: true
        case .admins(let admins): admins.contains(.rogue)
        }
    }
}

/// A rollout a scenario starts (`rollout:` step), as `otamesh rollout start` options.
public struct RolloutSpec: Sendable, Equatable {
    /// The scenario's name for it (`r1`); the mesh's id is learned when it starts.
    public var name: String
    public var target: String
    public var select: String
    public var stages: [Int]
    /// Seconds.
    public var soak: Double
    public var success: Int?
    public var maxFailures: [String]
    public var minFinished: Int?
    public var concurrency: Int?
    /// Seconds.
    public var deviceTimeout: Double?
    /// The gateway whose admin API receives the start and approvals.
    public var at: String
    public var signers: Signers
    /// Firmware first, then each device's configuration (`--configuration`, docs/apps.md).
    public var configuration = false

    /// `otamesh rollout start` options (without key, admin URL and token).
    public var startArguments: [String] {
        var arguments = [
            "--target", target, "--select", select, "--stages", stages.map(String.init).joined(separator: ","),
            "--soak", "\(Int(soak.rounded(.up)))s",
        ]
        if let success { arguments += ["--success", "\(success)%"] }
        for limit in maxFailures { arguments += ["--max-failures", limit] }
        if let minFinished { arguments += ["--min-finished", "\(minFinished)"] }
        if let concurrency { arguments += ["--concurrency", "\(concurrency)"] }
        if let deviceTimeout { arguments += ["--device-timeout", "\(Int(deviceTimeout.rounded(.up)))s"] }
        if configuration { arguments.append("--configuration") }
        return arguments
    }
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
        /// The gateway's device registry holds at least this many devices its discovery found.
        case discovered(String, count: Int)
        /// Every device of the group last mounted a configuration holding these settings (its
        /// newest `configured` event, read from the group's log).
        case configured(String, settings: [String: String])
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
    /// Starts a rollout through `otamesh rollout start` (and `approve` for further signers)
    /// at one gateway; with signers that must be refused, tries it at every running gateway and
    /// passes only if each refuses.
    case rollout(RolloutSpec)
    /// Every running gateway reports the rollout in this mode (`completed`, `halted`, …).
    case rolloutMode(String, mode: String, timeout: Double)
    /// `otamesh rollout halt` at one gateway (admin token, no signature).
    case halt(String, at: String, reason: String)
    /// `otamesh rollout resume`, signed as given; refused signers are tried at every gateway.
    case resume(String, at: String, signers: Signers)
    /// Restarts a device group with other faults and/or version.
    case devices(group: String, faults: [DeviceFault], version: String?)
    /// Sets app settings of every device of a group through `otamesh device config import` at
    /// one gateway (the others learn them by gossip).
    case configure(ConfigureSpec)
    /// Narration: printed as is.
    case say(String)

    public static let defaultWaitTimeout = 60.0

    public var summary: String {
        switch self {
        case .wait(.converged, _): "wait converged"
        case .wait(.failed(let name, let by), _): "wait failed \(name)" + (by.isEmpty ? "" : " by \(by.joined(separator: ","))")
        case .wait(.alive(let name, let by), _): "wait alive \(name)" + (by.isEmpty ? "" : " by \(by.joined(separator: ","))")
        case .wait(.discovered(let name, let count), _): "wait \(count) devices discovered at \(name)"
        case .wait(.configured(let group, let settings), _):
            "wait \(group) configured with " + settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        case .kill(let name): "kill \(name)"
        case .stop(let name): "stop \(name)"
        case .start(let name): "start \(name)"
        case .partition(let groups): "partition " + groups.map { "[" + $0.joined(separator: ",") + "]" }.joined(separator: " | ")
        case .heal: "heal"
        case .link(let network, .loss(let percent)): "loss \(network) \(LabDuration.number(percent))%"
        case .link(let network, .rate(let rate)): "rate \(network) \(rate?.text ?? "unlimited")"
        case .link(let network, .delay(let delay)): "delay \(network) \(LabDuration.text(delay))"
        case .sleep(let seconds): "sleep \(LabDuration.text(seconds))"
        case .rollout(let spec):
            (spec.signers.mustBeRefused ? "refused rollout \(spec.name)" : "rollout \(spec.name)")
                + " \(spec.target)\(spec.configuration ? " with configuration" : "") [\(spec.select)] \(spec.stages.map { "\($0)%" }.joined(separator: "→")) signed by \(spec.signers.text)"
        case .rolloutMode(let name, let mode, _): "wait rollout \(name) \(mode)"
        case .halt(let name, let at, _): "halt \(name) at \(at)"
        case .resume(let name, let at, let signers):
            (signers.mustBeRefused ? "refused resume \(name)" : "resume \(name) at \(at)") + " signed by \(signers.text)"
        case .devices(let group, let faults, let version):
            "devices \(group)" + (faults.isEmpty ? " without faults" : " with \(faults.map(\.rawValue).joined(separator: ","))")
                + (version.map { " from \($0)" } ?? "")
        case .configure(let spec):
            "configure \(spec.group) at \(spec.at)" + (spec.app.map { " as \($0)" } ?? "") + ": "
                + spec.settings.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        case .say: "say"
        }
    }
}

/// App settings for every device of a group (`configure:` step), as one
/// `otamesh device config import` CSV.
public struct ConfigureSpec: Sendable, Equatable {
    public var group: String
    /// The gateway whose admin API takes them.
    public var at: String
    /// `NAME@VERSION`, or nil: the app version the device runs.
    public var app: String?
    /// prop, value — in the file's order.
    public var settings: [(String, String)]

    public init(group: String, at: String, app: String?, settings: [(String, String)]) {
        (self.group, self.at, self.app, self.settings) = (group, at, app, settings)
    }

    public static func == (a: ConfigureSpec, b: ConfigureSpec) -> Bool {
        a.group == b.group && a.at == b.at && a.app == b.app && a.settings.elementsEqual(b.settings) { $0 == $1 }
    }

    /// The CSV (RFC 4180, every field quoted) for these devices.
    public func csv(devices: [String]) -> String {
        func field(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var lines = [(["device"] + (app == nil ? [] : ["app"]) + settings.map(\.0)).map(field).joined(separator: ",")]
        for device in devices {
            lines.append(([device] + (app.map { [$0] } ?? []) + settings.map(\.1)).map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
