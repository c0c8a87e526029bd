/// What a plan would select, before anyone signs it (`otamesh rollout start --dry-run`,
/// `POST /api/v1/rollouts/preview`): matching devices per stage and per gateway, the devices
/// left out because they report no value for a selector key, and warnings about plans that
/// would select nothing or never reach every device. Pure: the gateway supplies the devices.
public struct RolloutPreview: Codable, Sendable, Equatable {
    /// Devices considered (every device the answering gateway knows).
    public var devices: Int
    /// Devices the selector matches.
    public var matching: Int
    /// Matching devices per stage (cumulative, like the stages).
    public var perStage: [Int]
    /// Per gateway: matching devices per stage.
    public var gateways: [String: [Int]]
    /// Per selector key: devices that match every other term but report no value for this key,
    /// so the plan skips them.
    public var leftOut: [String: Int]
    /// Matching devices whose hardware was inferred from the image they run.
    public var inferredHardware: Int
    /// Matching devices that already run the target's version (they count as succeeded).
    public var alreadyCurrent: Int
    public var warnings: [String]

    public init(plan: RolloutPlan, devices: [DeviceFacts], inferredHardware inferred: Set<String> = []) {
        self.devices = devices.count
        var perStage = [Int](repeating: 0, count: plan.stages.count)
        var gateways: [String: [Int]] = [:]
        var leftOut: [String: Int] = [:]
        var matching = 0
        var current = 0
        var inferredCount = 0
        for device in devices {
            gateways[device.gateway] = gateways[device.gateway] ?? [Int](repeating: 0, count: plan.stages.count)
            guard plan.selector.matches(device) else {
                // Left out for want of a value: it would match if it reported one.
                let unknown = plan.selector.unknownKeys(device)
                if !unknown.isEmpty, DeviceSelector(terms: plan.selector.terms.filter { !unknown.contains($0.key) }).matches(device) {
                    for key in unknown { leftOut[key, default: 0] += 1 }
                }
                continue
            }
            matching += 1
            if inferred.contains(device.id) { inferredCount += 1 }
            if let version = device.version, version == plan.target.version { current += 1 }
            let bucket = StageSelection.bucket(rollout: plan.id, device: device.id)
            for index in plan.stages.indices where bucket < plan.stages[index] * 100 {
                perStage[index] += 1
                gateways[device.gateway]![index] += 1
            }
        }
        self.matching = matching
        self.perStage = perStage
        self.gateways = gateways
        self.leftOut = leftOut
        self.inferredHardware = inferredCount
        self.alreadyCurrent = current

        var warnings: [String] = []
        if matching == 0 {
            warnings.append("the selection (\(plan.selector)) matches none of the \(devices.count) devices known here")
        } else if perStage.first == 0 {
            warnings.append(
                "stage 1 (\(plan.stages[0])%) selects no device of the \(matching) matching: it would only soak; raise it or use --stages with a larger first stage"
            )
        }
        for (key, count) in leftOut.sorted(by: { $0.key < $1.key }) {
            let why = key == "hardware" ? " (Arduino ESP32 HTTPUpdate and plain HTTP pulls send no chip model; see docs/devices.md)" : ""
            warnings.append("\(count) device\(count == 1 ? "" : "s") report\(count == 1 ? "s" : "") no \(key) and \(count == 1 ? "is" : "are") left out\(why)")
        }
        if let last = plan.stages.last, last < 100 {
            warnings.append("the last stage is \(last)%: about \(100 - last)% of the matching devices are never updated by this rollout")
        }
        if let mismatch = plan.hardwareMismatch { warnings.append(mismatch) }
        self.warnings = warnings
    }
}

extension RolloutPlan {
    /// Why the selector and the target's hardware disagree (the target is for hardware the
    /// selector does not pick), or nil.
    public var hardwareMismatch: String? {
        guard let hardware = target.hardware?.lowercased(), let wanted = selector.terms["hardware"], !wanted.contains(hardware) else { return nil }
        return "\(target.path) is for hardware \(hardware), the selector picks \(wanted.sorted().joined(separator: ", "))"
    }
}
