import OTAMeshTrust

/// One configuration property of an app version, as the signed catalog declares it (App Fairy's
/// `prop`, `label`, `type`, `default`, plus `min`/`max`/`pattern`/`choices`/`required`).
/// Numbers are integers: the signed metadata is canonical JSON, which has no fractions.
public struct AppProperty: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case text, password, number, boolean, select
    }

    public var prop: String
    public var label: String
    public var kind: Kind
    public var defaultValue: SettingValue?
    public var min: Int64?
    public var max: Int64?
    public var pattern: String?
    public var choices: [String]
    public var required: Bool

    public init(
        prop: String, label: String? = nil, kind: Kind, defaultValue: SettingValue? = nil, min: Int64? = nil, max: Int64? = nil,
        pattern: String? = nil, choices: [String] = [], required: Bool = false
    ) {
        self.prop = prop
        self.label = label ?? prop
        self.kind = kind
        self.defaultValue = defaultValue
        self.min = min
        self.max = max
        self.pattern = pattern
        self.choices = choices
        self.required = required
    }

    /// The longest text or password value accepted (bytes of UTF-8).
    public static let maxTextBytes = 1024
    /// Property names: what a JSON configuration file and a command line both carry safely.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F || $0 == 0x2D || $0 == 0x2E
            }
    }

    /// Whether values of this property are secrets (kept in the gateway's secret store, never
    /// shown, logged or gossiped).
    public var isSecret: Bool { kind == .password }

    /// The value `text` (as typed on a command line or in a CSV cell) gives this property, or
    /// why it cannot be one.
    public func value(from text: String) -> Result<SettingValue, SettingProblem> {
        switch kind {
        case .text, .password, .select:
            return check(.text(text))
        case .number:
            let trimmed = text.trimmingWhitespace
            guard let number = Int64(trimmed) else { return .failure(SettingProblem(prop: prop, reason: "\(quoted(text)) is not a whole number")) }
            return check(.number(number))
        case .boolean:
            switch text.trimmingWhitespace.lowercased() {
            case "true", "yes", "on", "1": return .success(.boolean(true))
            case "false", "no", "off", "0": return .success(.boolean(false))
            default: return .failure(SettingProblem(prop: prop, reason: "\(quoted(text)) is not true or false"))
            }
        }
    }

    /// Checks a typed value against the property's type and constraints.
    public func check(_ value: SettingValue) -> Result<SettingValue, SettingProblem> {
        func problem(_ reason: String) -> Result<SettingValue, SettingProblem> { .failure(SettingProblem(prop: prop, reason: reason)) }
        switch (kind, value) {
        case (.number, .number(let number)):
            if let min, number < min { return problem("\(number) is below the minimum \(min)") }
            if let max, number > max { return problem("\(number) is above the maximum \(max)") }
            return .success(value)
        case (.boolean, .boolean):
            return .success(value)
        case (.select, .text(let text)):
            guard choices.contains(text) else { return problem("\(quoted(text)) is not one of \(choices.joined(separator: ", "))") }
            return .success(value)
        case (.text, .text(let text)), (.password, .text(let text)):
            let shown = kind == .password ? "the value" : quoted(text)
            if text.utf8.count > Self.maxTextBytes {
                return problem("\(kind == .password ? "the value" : "the text") is \(text.utf8.count) bytes, at most \(Self.maxTextBytes)")
            }
            if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return problem("\(shown) holds a control character") }
            if let min, text.count < min { return problem("\(shown) is \(text.count) characters, at least \(min)") }
            if let max, text.count > max { return problem("\(shown) is \(text.count) characters, at most \(max)") }
            if let pattern, !AppPattern.wholeMatch(pattern, text) {
                return problem("\(shown) does not match the pattern \(pattern)")
            }
            return .success(value)
        default:
            return problem("a \(value.kindName) value for a \(kind.rawValue) property")
        }
    }

    private func quoted(_ text: String) -> String { SettingValue.text(text).shown }
}

/// A configuration value: text (also passwords and select choices), a whole number or a boolean.
public enum SettingValue: Sendable, Hashable {
    case text(String)
    case number(Int64)
    case boolean(Bool)

    var kindName: String {
        switch self {
        case .text: "text"
        case .number: "number"
        case .boolean: "boolean"
        }
    }

    /// The value as JSON (for the configuration file and the catalog's defaults).
    public var json: JSONValue {
        switch self {
        case .text(let text): .string(text)
        case .number(let number): .integer(number)
        case .boolean(let flag): .bool(flag)
        }
    }

    /// From JSON (a catalog default, a stored setting).
    public init?(json: JSONValue) {
        switch json {
        case .string(let text): self = .text(text)
        case .integer(let number): self = .number(number)
        case .bool(let flag): self = .boolean(flag)
        default: return nil
        }
    }

    /// The value as the configuration file's `prop=value` lines and `--json` output carry it:
    /// the text itself, the number, `true`/`false`.
    public var plain: String {
        switch self {
        case .text(let text): text
        case .number(let number): String(number)
        case .boolean(let flag): flag ? "true" : "false"
        }
    }

    /// The value for a terminal or a log: quoted, control characters escaped, cut at 80 characters.
    /// Never used for secrets.
    public var shown: String {
        switch self {
        case .number(let number): return String(number)
        case .boolean(let flag): return flag ? "true" : "false"
        case .text(let text):
            var out = "\""
            for scalar in text.unicodeScalars.prefix(80) {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{\(String(scalar.value, radix: 16))}"
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + (text.unicodeScalars.count > 80 ? "…\"" : "\"")
        }
    }
}

/// Why a value cannot be a property's: one line naming the property.
public struct SettingProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public let prop: String
    public let reason: String
    public init(prop: String, reason: String) {
        self.prop = prop
        self.reason = reason
    }
    public var description: String { "\(prop): \(reason)" }
}

extension String {
    var trimmingWhitespace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
