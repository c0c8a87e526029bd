import OTAMeshCommon
import OTAMeshFirmware

/// One JSON object on one line, keys in insertion order (so the output reads the same way every
/// run: `device`, `event`, then the details). Pure.
struct JSONLine: Sendable {
    enum Value: Sendable {
        case string(String)
        case int(Int)
        case double(Double)
        case bool(Bool)
        case null
    }

    private(set) var fields: [(String, Value)] = []

    init(_ fields: [(String, Value)] = []) { self.fields = fields }

    mutating func add(_ key: String, _ value: String?) { if let value { fields.append((key, .string(value))) } }
    mutating func add(_ key: String, _ value: Int?) { if let value { fields.append((key, .int(value))) } }
    mutating func add(_ key: String, _ value: Double?) { if let value { fields.append((key, .double(value))) } }
    mutating func add(_ key: String, _ value: Bool?) { if let value { fields.append((key, .bool(value))) } }
    /// Adds the key even when the value is absent (`null`).
    mutating func addAlways(_ key: String, _ value: Double?) { fields.append((key, value.map(Value.double) ?? .null)) }

    var text: String {
        var out = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { out += "," }
            out += Self.quote(key) + ":"
            switch value {
            case .string(let s): out += Self.quote(s)
            case .int(let i): out += String(i)
            case .double(let d): out += Self.number(d)
            case .bool(let b): out += b ? "true" : "false"
            case .null: out += "null"
            }
        }
        return out + "}"
    }

    /// Milliseconds with three decimals at most, no exponent.
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        let scaled = (d * 1000).rounded() / 1000
        if scaled == scaled.rounded() && abs(scaled) < 1e15 { return String(Int64(scaled)) }
        return String(scaled)
    }

    /// OTAMeshFirmware's shared JSON string quoter.
    static func quote(_ text: String) -> String { jsonQuoted(text) }
}
