/// Which rollout governs a device that several cover.
///
/// The newest approved open rollout whose selector matches the device governs it (newest by the
/// plan's signed `issued` time, then by id, so every gateway picks the same one); older ones
/// release it — they neither start it nor count it. Aborted and completed rollouts cover
/// nothing. An attempt already in flight finishes under the rollout that started it.
public enum RolloutGovernance {
    /// Rollouts with an approved plan, newest first.
    public static func newestFirst(_ views: [RolloutView]) -> [RolloutView] {
        views.filter { $0.plan != nil }.sorted { ($0.planIssued, $0.id) > ($1.planIssued, $1.id) }
    }

    /// The id of the rollout that governs `device`, given the views newest first; nil: none.
    public static func governing(_ device: DeviceFacts, newestFirst views: [RolloutView]) -> String? {
        views.first { $0.covers(device) }?.id
    }
}

extension DeviceFacts {
    /// The facts with `hardware` inferred when the device reports none but runs a known image:
    /// its version is that of trusted targets made for exactly one hardware (Arduino ESP32
    /// HTTPUpdate, for one, sends no chip model).
    public func inferringHardware(from targets: [(version: String?, hardware: String?)]) -> DeviceFacts {
        guard hardware == nil, let version else { return self }
        let candidates = Set(targets.compactMap { $0.version == version ? $0.hardware?.lowercased() : nil })
        guard candidates.count == 1 else { return self }
        var inferred = self
        inferred.hardware = candidates.first
        return inferred
    }
}
