/// The lab's state directory: the run record `lab down` reads, logs, the site keyring, the
/// origin's repository and each gateway's data, bus socket and daemon configs.
public struct LabPaths: Sendable, Equatable {
    public let root: String

    public init(root: String) { self.root = root }

    /// Where a topology's state goes unless `--state` says otherwise.
    public static let defaultParent = "/tmp/otamesh-lab"
    public static func defaultRoot(for topology: Topology) -> String { "\(defaultParent)/\(topology.name)" }

    public var record: String { "\(root)/lab.json" }
    public var logs: String { "\(root)/logs" }
    public func log(_ label: String) -> String { "\(logs)/\(label).log" }
    public var keyring: String { "\(root)/site-keyring.json" }
    /// The rollout admins' keys (`NAME.pem`, `NAME.pub.json`) and the site trust file.
    public var admin: String { "\(root)/admin" }
    public func adminKey(_ admin: LabAdmin) -> String { "\(self.admin)/\(admin.rawValue).pem" }
    public func adminPublicKey(_ admin: LabAdmin) -> String { "\(self.admin)/\(admin.rawValue).pub.json" }
    public var siteTrust: String { "\(admin)/site.trust" }
    /// What the runner saw of each rollout, per gateway (written while a rollout runs).
    public var rollouts: String { "\(root)/rollouts.json" }

    public var origin: String { "\(root)/origin" }
    public var originRepository: String { "\(origin)/repo" }
    public var originSite: String { "\(origin)/site" }
    public var originImages: String { "\(origin)/images" }
    public var trustRoot: String { "\(originSite)/metadata/1.root.json" }

    public func gateway(_ name: String) -> String { "\(root)/gw/\(name)" }
    public func dataDirectory(_ name: String) -> String { "\(gateway(name))/data" }
    /// The gateway's admin API token (read/write), written by the agent.
    public func adminToken(_ name: String) -> String { "\(dataDirectory(name))/keys/admin.token" }
    /// The gateway namespace's D-Bus system bus socket (kept short: unix socket paths are limited to 107 bytes).
    public func busSocket(_ name: String) -> String { "\(gateway(name))/bus" }
    public func busAddress(_ name: String) -> String { "unix:path=\(busSocket(name))" }
    public func dbusConfig(_ name: String) -> String { "\(gateway(name))/dbus.conf" }
    public func avahiConfig(_ name: String) -> String { "\(gateway(name))/avahi.conf" }
    /// Bind-mounted over /run/avahi-daemon in that avahi-daemon's private mount namespace.
    public func avahiRuntime(_ name: String) -> String { "\(gateway(name))/avahi-run" }
}

/// The executables the lab runs: otamesh (the running binary) and otamesh-devicesim next to it.
public struct LabBinaries: Sendable, Equatable {
    public var otamesh: String
    public var devicesim: String

    public init(otamesh: String, devicesim: String) {
        self.otamesh = otamesh
        self.devicesim = devicesim
    }
}
