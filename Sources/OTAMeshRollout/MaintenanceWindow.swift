/// A daily window (UTC) in which new device updates may start, e.g. `22:00-04:00` (it may wrap
/// past midnight). In-flight updates finish outside it.
public struct MaintenanceWindow: Sendable, Hashable, CustomStringConvertible {
    /// Minutes after midnight UTC.
    public let start: Int
    public let end: Int

    public init(start: Int, end: Int) throws(RolloutError) {
        guard (0..<1440).contains(start), (0..<1440).contains(end), start != end else {
            throw .invalidPlan(field: "window", reason: "start and end must differ, each 00:00…23:59")
        }
        self.start = start
        self.end = end
    }

    /// Parses `HH:MM-HH:MM`.
    public init(parsing text: String) throws(RolloutError) {
        let parts = text.split(separator: "-")
        func minutes(_ part: Substring) -> Int? {
            let hm = part.split(separator: ":")
            guard hm.count == 2, hm[0].count <= 2, hm[1].count == 2, let h = Int(hm[0]), let m = Int(hm[1]), (0..<24).contains(h), (0..<60).contains(m) else {
                return nil
            }
            return h * 60 + m
        }
        guard parts.count == 2, let start = minutes(parts[0]), let end = minutes(parts[1]) else {
            throw .invalidPlan(field: "window", reason: "'\(text)' is not HH:MM-HH:MM (UTC)")
        }
        try self.init(start: start, end: end)
    }

    /// True when `milliseconds` (Unix time) falls inside the window.
    public func contains(milliseconds: Int64) -> Bool {
        let minute = Int((milliseconds / 60_000) % 1440 + 1440) % 1440
        return start < end ? (minute >= start && minute < end) : (minute >= start || minute < end)
    }

    public var description: String {
        func hm(_ m: Int) -> String { (m / 60 < 10 ? "0" : "") + "\(m / 60):" + (m % 60 < 10 ? "0" : "") + "\(m % 60)" }
        return "\(hm(start))-\(hm(end))"
    }
}
