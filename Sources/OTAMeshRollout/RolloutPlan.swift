import OTAMeshTrust

/// The signed image a rollout installs: a target path of the trusted TUF metadata, pinned to its
/// SHA-256 and length (a later targets.json cannot swap the bytes under a running rollout).
public struct RolloutTarget: Sendable, Hashable {
    public var path: String
    public var sha256: String
    public var length: Int64
    /// The version devices report once they run it (from the target's custom metadata).
    public var version: String?
    /// The hardware the image is for, if the metadata says.
    public var hardware: String?

    public init(path: String, sha256: String, length: Int64, version: String? = nil, hardware: String? = nil) {
        self.path = path
        self.sha256 = sha256.lowercased()
        self.length = length
        self.version = version
        self.hardware = hardware
    }
}

/// A rollout plan: which image, which devices, the stages and the rules that advance or halt
/// it. Admins sign it as the payload of a ``SignedCommand`` of kind `rollout.plan`, sequence 1.
///
/// Invariants (checked by ``validate()``): stages are cumulative percentages that rise strictly
/// within 1…100; percentages are 0…100; counts are ≥ 0; concurrency ≥ 1.
public struct RolloutPlan: Sendable, Hashable {
    public static let commandKind = "rollout.plan"

    /// `r-` and 12 hex digits; also the salt of stage selection.
    public var id: String
    public var target: RolloutTarget
    public var selector: DeviceSelector
    /// Cumulative percentages of the matching devices, e.g. [1, 10, 50, 100].
    public var stages: [Int]
    /// Seconds a stage must run before the next may start.
    public var soakSeconds: Int64
    /// The share of a stage's devices that must have succeeded before it advances (0…100).
    public var successPercent: Int
    /// Halt when failures exceed this share of finished devices (nil: no percentage rule).
    public var maxFailurePercent: Int?
    /// Halt when failures exceed this count (nil: no count rule).
    public var maxFailures: Int?
    /// Failure thresholds apply only once this many devices finished (succeeded or failed).
    public var minFinished: Int
    /// Device updates one gateway drives at once.
    public var concurrency: Int
    /// Seconds from the first offer until the device must report the new version.
    public var deviceTimeoutSeconds: Int64
    public var window: MaintenanceWindow?
    /// Whether devices first seen after a stage began still join it. False (the default): each
    /// stage's device set is fixed when the stage starts, so a rollout ends.
    public var dynamic: Bool
    /// The target is an app version rolled out with each device's configuration: a device
    /// succeeds only once it runs the target's version **and** its filesystem holds its current
    /// configuration (apps.md), and new configurations reach covered devices stage by stage.
    public var configuration: Bool = false
    /// The key id of the admin who wrote the plan (shown as its author when that key's signature
    /// is among the plan's valid ones); not part of any decision.
    public var author: String?

    public init(
        id: String, target: RolloutTarget, selector: DeviceSelector = DeviceSelector(), stages: [Int],
        soakSeconds: Int64 = 600, successPercent: Int = 95, maxFailurePercent: Int? = 5, maxFailures: Int? = nil,
        minFinished: Int = 5, concurrency: Int = 4, deviceTimeoutSeconds: Int64 = 1800, window: MaintenanceWindow? = nil,
        dynamic: Bool = false
    ) {
        self.dynamic = dynamic
        self.id = id
        self.target = target
        self.selector = selector
        self.stages = stages
        self.soakSeconds = soakSeconds
        self.successPercent = successPercent
        self.maxFailurePercent = maxFailurePercent
        self.maxFailures = maxFailures
        self.minFinished = minFinished
        self.concurrency = concurrency
        self.deviceTimeoutSeconds = deviceTimeoutSeconds
        self.window = window
    }

    public func validate() throws(RolloutError) {
        guard Self.isValidID(id) else { throw .invalidPlan(field: "id", reason: "'\(id)' is not r- and 12 lower-case hex digits") }
        // ASCII hex only: `Character.isHexDigit` also accepts fullwidth digits, which no digest matches.
        guard !target.path.isEmpty, target.sha256.utf8.count == 64, target.sha256.utf8.allSatisfy(Self.isASCIIHexDigit), target.length > 0 else {
            throw .invalidPlan(field: "target", reason: "needs a path, a 64-digit SHA-256 and a length above zero")
        }
        guard !stages.isEmpty, stages.count <= 20 else { throw .invalidPlan(field: "stages", reason: "give 1 to 20 cumulative percentages") }
        for (index, stage) in stages.enumerated() {
            guard (1...100).contains(stage) else { throw .invalidPlan(field: "stages", reason: "\(stage) is not within 1…100") }
            if index > 0, stage <= stages[index - 1] {
                throw .invalidPlan(field: "stages", reason: "stages must rise: \(stage) after \(stages[index - 1])")
            }
        }
        guard soakSeconds >= 0 else { throw .invalidPlan(field: "soak", reason: "must not be negative") }
        guard soakSeconds <= Self.maxSeconds else { throw .invalidPlan(field: "soak", reason: "more than a year (\(Self.maxSeconds) s)") }
        guard (0...100).contains(successPercent) else { throw .invalidPlan(field: "success", reason: "\(successPercent)% is not within 0…100") }
        if let maxFailurePercent, !(0...100).contains(maxFailurePercent) {
            throw .invalidPlan(field: "max-failures", reason: "\(maxFailurePercent)% is not within 0…100")
        }
        if let maxFailures, maxFailures < 0 { throw .invalidPlan(field: "max-failures", reason: "must not be negative") }
        guard minFinished >= 0 else { throw .invalidPlan(field: "min-finished", reason: "must not be negative") }
        guard (1...1000).contains(concurrency) else { throw .invalidPlan(field: "concurrency", reason: "\(concurrency) is not within 1…1000") }
        guard deviceTimeoutSeconds > 0 else { throw .invalidPlan(field: "device-timeout", reason: "must be above zero") }
        guard deviceTimeoutSeconds <= Self.maxSeconds else {
            throw .invalidPlan(field: "device-timeout", reason: "more than a year (\(Self.maxSeconds) s)")
        }
    }

    /// The longest soak or device timeout: a year. Gateways compare them in milliseconds, so a
    /// bound also keeps `seconds × 1000` far from overflow.
    public static let maxSeconds: Int64 = 365 * 86_400

    static func isASCIIHexDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (65...70).contains(byte) || (97...102).contains(byte) }

    static func isValidID(_ id: String) -> Bool {
        let utf8 = Array(id.utf8)
        return utf8.count == 14 && id.hasPrefix("r-") && utf8.dropFirst(2).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The bucket bound of stage `index`: devices with `bucket < bound` are in it.
    public func bound(ofStage index: Int) -> Int { stages[max(0, min(index, stages.count - 1))] * 100 }

    // MARK: JSON (the signed payload)

    public var json: JSONValue {
        var object = JSONObject()
        object["id"] = .string(id)
        var t = JSONObject()
        t["path"] = .string(target.path)
        t["sha256"] = .string(target.sha256)
        t["length"] = .integer(target.length)
        if let version = target.version { t["version"] = .string(version) }
        if let hardware = target.hardware { t["hardware"] = .string(hardware) }
        object["target"] = .object(t)
        object["select"] = .string(selector.text)
        object["stages"] = .array(stages.map { .integer(Int64($0)) })
        object["soak"] = .integer(soakSeconds)
        object["success"] = .integer(Int64(successPercent))
        if let maxFailurePercent { object["maxFailurePercent"] = .integer(Int64(maxFailurePercent)) }
        if let maxFailures { object["maxFailures"] = .integer(Int64(maxFailures)) }
        object["minFinished"] = .integer(Int64(minFinished))
        object["concurrency"] = .integer(Int64(concurrency))
        object["deviceTimeout"] = .integer(deviceTimeoutSeconds)
        if let window { object["window"] = .string(window.description) }
        if dynamic { object["dynamic"] = .bool(true) }
        if configuration { object["configuration"] = .bool(true) }
        if let author { object["author"] = .string(author) }
        return .object(object)
    }

    /// An optional boolean: absent or null is false, anything but true/false is refused.
    static func flag(_ value: JSONValue?, _ key: String) throws(RolloutError) -> Bool {
        guard let value, value != .null else { return false }
        guard case .bool(let flag) = value else { throw .invalidPlan(field: key, reason: "not true or false") }
        return flag
    }

    public init(json: JSONValue) throws(RolloutError) {
        func integer(_ key: String) throws(RolloutError) -> Int64 {
            guard let value = json[key]?.integerValue else { throw .invalidPlan(field: key, reason: "missing or not an integer") }
            return value
        }
        func optionalInteger(_ key: String) throws(RolloutError) -> Int? {
            guard let value = json[key] else { return nil }
            guard let n = value.integerValue, let int = Int(exactly: n) else { throw .invalidPlan(field: key, reason: "not an integer") }
            return int
        }
        /// An optional text field: absent (or null) is nil, any other type is refused — a selector or
        /// window of the wrong type must not silently widen the plan to every device or every hour.
        func optionalString(_ value: JSONValue?, _ key: String) throws(RolloutError) -> String? {
            guard let value, value != .null else { return nil }
            guard let text = value.stringValue else { throw .invalidPlan(field: key, reason: "not a string") }
            return text
        }
        guard let id = json["id"]?.stringValue else { throw .invalidPlan(field: "id", reason: "missing") }
        guard let t = json["target"], let path = t["path"]?.stringValue, let sha = t["sha256"]?.stringValue,
            let length = t["length"]?.integerValue
        else { throw .invalidPlan(field: "target", reason: "needs path, sha256 and length") }
        guard let stageValues = json["stages"]?.arrayValue else { throw .invalidPlan(field: "stages", reason: "missing") }
        var stages: [Int] = []
        for value in stageValues {
            guard let n = value.integerValue, let stage = Int(exactly: n) else { throw .invalidPlan(field: "stages", reason: "not integers") }
            stages.append(stage)
        }
        let selector = try DeviceSelector(parsing: optionalString(json["select"], "select") ?? "")
        let window: MaintenanceWindow? = try optionalString(json["window"], "window").map { (text) throws(RolloutError) in try MaintenanceWindow(parsing: text)
        }
        let version = try optionalString(t["version"], "target.version")
        let hardware = try optionalString(t["hardware"], "target.hardware")
        self.init(
            id: id, target: RolloutTarget(path: path, sha256: sha, length: length, version: version, hardware: hardware),
            selector: selector, stages: stages, soakSeconds: try integer("soak"), successPercent: Int(clamping: try integer("success")),
            maxFailurePercent: try optionalInteger("maxFailurePercent"), maxFailures: try optionalInteger("maxFailures"),
            minFinished: Int(clamping: try integer("minFinished")), concurrency: Int(clamping: try integer("concurrency")),
            deviceTimeoutSeconds: try integer("deviceTimeout"), window: window, dynamic: try Self.flag(json["dynamic"], "dynamic"))
        author = try optionalString(json["author"], "author").map { String($0.prefix(128)) }
        configuration = try Self.flag(json["configuration"], "configuration")
        try validate()
    }
}
