import OTAMeshCommon
import OTAMeshRollout

/// What the rollout engine needs from the mesh: the `ro/` records of every owner, a way to
/// write this gateway's own, and how many members it sees alive.
public protocol RolloutRecordStore: Sendable {
    /// Every `ro/` record, and each one's version by "owner key".
    func rolloutEntries() -> (entries: [RolloutRecords.Entry], versions: [String: UInt64])
    func putRecord(_ key: String, _ value: [UInt8]) throws
    /// Names of the members alive in this gateway's view, itself included.
    func aliveMembers() -> Set<String>
}

/// A device as the device routes see it on one request.
public struct DeviceQuery: Sendable, Equatable {
    public var id: String
    public var family: DeviceFamily
    public var hardware: String?
    public var version: String?
    public var address: String
    /// The device asks for its filesystem (a new configuration), not its firmware.
    public var filesystem: Bool
    /// The device's filesystem holds its current configuration (the shell knows, the routes do not).
    public var configured: Bool

    public init(
        id: String, family: DeviceFamily, hardware: String? = nil, version: String? = nil, address: String = "", filesystem: Bool = false,
        configured: Bool = false
    ) {
        self.id = id
        self.family = family
        self.hardware = hardware
        self.version = version
        self.address = address
        self.filesystem = filesystem
        self.configured = configured
    }

    /// Whether this is an answer to `question` as the routes asked it (the shell adds what it
    /// knows of the device: ``configured``).
    public func asks(_ question: DeviceQuery) -> Bool {
        var asked = self
        asked.configured = question.configured
        return asked == question
    }
}

/// The device side of rollouts: what ``DeviceAPI`` asks on a device's request when the pure
/// routes need it (``DeviceRoutes/Outcome/needRolloutAnswer(_:)``), and what it tells them after.
public protocol DeviceRollouts: Sendable {
    func answer(_ query: DeviceQuery) -> RolloutAnswer
    /// The routes served (`upToDate: false`) or found current (`true`) the offered target.
    func concluded(_ query: DeviceQuery, rollout: String, upToDate: Bool)
    /// A blob body started (`completed: false`) or finished going out whole to `device` (when
    /// the route knows it) at `address`.
    func transfer(sha256: String, device: String?, address: String, completed: Bool)
    /// The device's filesystem reported its current configuration (`query.version`: the
    /// firmware it last reported).
    func configurationReported(_ query: DeviceQuery)
    /// The device reported on its attempt under `rollout` itself (hawkBit DDI feedback).
    func reported(device: String, rollout: String, _ report: RolloutNode.DeviceReport)
}
