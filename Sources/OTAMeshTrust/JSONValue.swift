/// A JSON value as TUF metadata uses it: integers only (no floats), exact strings, objects
/// with unique keys. Parsed strictly (RFC 8259) with a depth limit, so any bytes from disk or
/// network give either a value or a ``JSONError`` — never a crash.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// An object from Swift key/value pairs (keys must be distinct by Unicode scalars).
    public static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        var object = JSONObject()
        for (key, value) in pairs { object[key] = value }
        return .object(object)
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var integerValue: Int64? { if case .integer(let n) = self { return n }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
}

/// A JSON object whose keys compare by Unicode scalars, exactly as JSON (and securesystemslib)
/// does — not by Swift's canonical equivalence, under which `"e\u{301}"` equals `"é"`.
public struct JSONObject: Sendable, Hashable {
    struct Key: Hashable, Sendable {
        let text: String
        static func == (a: Key, b: Key) -> Bool { a.text.unicodeScalars.elementsEqual(b.text.unicodeScalars) }
        func hash(into hasher: inout Hasher) {
            for scalar in text.unicodeScalars { hasher.combine(scalar.value) }
        }
    }

    private var storage: [Key: JSONValue] = [:]

    public init() {}

    public subscript(key: String) -> JSONValue? {
        get { storage[Key(text: key)] }
        set { storage[Key(text: key)] = newValue }
    }

    /// Inserts a member; false when the key is already present.
    mutating func insert(_ key: String, _ value: JSONValue) -> Bool {
        storage.updateValue(value, forKey: Key(text: key)) == nil
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    /// Keys in canonical order (by Unicode code point).
    public var keys: [String] {
        storage.keys.map(\.text).sorted { $0.unicodeScalars.map(\.value).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) }
    }

    /// Members in canonical key order.
    public var members: [(key: String, value: JSONValue)] {
        keys.map { ($0, self[$0]!) }
    }
}

/// Why bytes are not acceptable JSON.
public enum JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    case syntax(offset: Int, reason: String)
    case tooDeep(limit: Int)
    case duplicateKey(String)
    case notInteger(offset: Int)
    case invalidUTF8

    public var description: String {
        switch self {
        case let .syntax(offset, reason): "invalid JSON at byte \(offset): \(reason)"
        case let .tooDeep(limit): "JSON nested deeper than \(limit) levels"
        case let .duplicateKey(key): "JSON object repeats the key \"\(key)\""
        case let .notInteger(offset): "JSON number at byte \(offset) is not an integer (TUF metadata allows integers only)"
        case .invalidUTF8: "JSON text is not valid UTF-8"
        }
    }
}

extension JSONValue {
    /// Parses UTF-8 JSON text.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw .syntax(offset: parser.index, reason: "data after the JSON value") }
        return value
    }

    /// The canonical form securesystemslib signs (`encode_canonical`): no whitespace, object keys
    /// sorted by Unicode code point, strings with only `"` and `\` escaped (every other character,
    /// control characters included, is written as-is in UTF-8), integers in decimal.
    public var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        writeCanonical(into: &out)
        return out
    }

    func writeCanonical(into out: inout [UInt8]) { write(into: &out, escapingControls: false) }

    /// Sorted keys, no whitespace; strings canonical (only `"` and `\` escaped) or, escaping
    /// controls, valid JSON for transport (``compactBytes``).
    func write(into out: inout [UInt8], escapingControls: Bool) {
        func string(_ s: String) {
            if escapingControls { Self.writeEscapedString(s, into: &out) } else { Self.writeCanonicalString(s, into: &out) }
        }
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .integer(let n): out += Array(String(n).utf8)
        case .string(let s): string(s)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out, escapingControls: escapingControls)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                string(member.key)
                out.append(UInt8(ascii: ":"))
                member.value.write(into: &out, escapingControls: escapingControls)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeCanonicalString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Compact JSON for transport: the canonical form (no whitespace, sorted keys) but with
    /// control characters escaped (`\n`, `\u0001`, …), so it is valid JSON that ``parse(_:maxDepth:)``
    /// reads back to the same value — canonical bytes with a control character in a string are
    /// not. Byte for byte the canonical form whenever no string holds a control character.
    public var compactBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out, escapingControls: true)
        return out
    }

    /// Pretty JSON for files people read (2-space indent, sorted keys, standard escapes).
    public var prettyBytes: [UInt8] {
        var out: [UInt8] = []
        writePretty(into: &out, indent: 0)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    func writePretty(into out: inout [UInt8], indent: Int) {
        func newline(_ level: Int) {
            out.append(UInt8(ascii: "\n"))
            out += [UInt8](repeating: UInt8(ascii: " "), count: level * 2)
        }
        switch self {
        case .string(let s): Self.writeEscapedString(s, into: &out)
        case .array(let items) where !items.isEmpty:
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                item.writePretty(into: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let object) where !object.isEmpty:
            out.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                Self.writeEscapedString(member.key, into: &out)
                out += Array(": ".utf8)
                member.value.writePretty(into: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "}"))
        default:
            writeCanonical(into: &out)
        }
    }

    static func writeEscapedString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += Array("\\\"".utf8)
            case "\\": out += Array("\\\\".utf8)
            case "\n": out += Array("\\n".utf8)
            case "\r": out += Array("\\r".utf8)
            case "\t": out += Array("\\t".utf8)
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += Array(("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
            default: out += Array(String(scalar).utf8)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw .tooDeep(limit: maxDepth) }
        guard index < bytes.count else { throw .syntax(offset: index, reason: "unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .integer(try integer())
        default: throw .syntax(offset: index, reason: "unexpected character")
        }
    }

    mutating func literal(_ word: String) throws(JSONError) {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else {
            throw .syntax(offset: index, reason: "expected \(word)")
        }
        index += expected.count
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var members = JSONObject()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw .syntax(offset: index, reason: "expected an object key") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw .syntax(offset: index, reason: "expected ':'") }
            index += 1
            skipWhitespace()
            let item = try value(depth: depth + 1)
            guard members.insert(key, item) else { throw .duplicateKey(key) }
            skipWhitespace()
            guard index < bytes.count else { throw .syntax(offset: index, reason: "unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw .syntax(offset: index, reason: "expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw .syntax(offset: index, reason: "unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw .syntax(offset: index, reason: "expected ',' or ']'")
        }
    }

    mutating func integer() throws(JSONError) -> Int64 {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        let digitsStart = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        guard index > digitsStart else { throw .syntax(offset: start, reason: "expected digits") }
        if bytes[digitsStart] == UInt8(ascii: "0"), index - digitsStart > 1 { throw .syntax(offset: start, reason: "leading zero") }
        if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
            throw .notInteger(offset: start)
        }
        guard let value = Int64(String(decoding: bytes[start..<index], as: UTF8.self)) else {
            throw .syntax(offset: start, reason: "integer out of range")
        }
        return value
    }

    mutating func string() throws(JSONError) -> String {
        let start = index
        index += 1
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flush(_ end: Int) throws(JSONError) {
            guard runStart < end else { return }
            guard let text = String(validating: bytes[runStart..<end], as: UTF8.self) else { throw .invalidUTF8 }
            scalars.append(contentsOf: text.unicodeScalars)
        }
        while true {
            guard index < bytes.count else { throw .syntax(offset: start, reason: "unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                try flush(index)
                index += 1
                return String(scalars)
            }
            if byte < 0x20 { throw .syntax(offset: index, reason: "control character in string") }
            if byte == UInt8(ascii: "\\") {
                try flush(index)
                index += 1
                guard index < bytes.count else { throw .syntax(offset: index, reason: "unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw .syntax(offset: index, reason: "lone surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw .syntax(offset: index, reason: "bad surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw .syntax(offset: index, reason: "lone surrogate")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw .syntax(offset: index, reason: "bad code point") }
                    scalars.append(scalar)
                default:
                    throw .syntax(offset: index - 1, reason: "unknown escape")
                }
                runStart = index
                continue
            }
            index += 1
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        let isHex: (UInt8) -> Bool = { (48...57).contains($0) || (65...70).contains($0) || (97...102).contains($0) }
        guard index + 4 <= bytes.count, bytes[index..<(index + 4)].allSatisfy(isHex),
            let value = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
        else { throw .syntax(offset: index, reason: "bad \\u escape") }
        index += 4
        return value
    }
}
