/// The WiPhone firmware's OTA rules, byte for byte (playfultechnology/wiphone `WiPhone/ota.cpp`
/// `compVersions` and `Ota::loadIniFile`, `WiPhone/NanoINI.cpp` `Config::parse`; see
/// /work/notes/device-protocols-research.md §1). Pure functions, no I/O.
enum WiPhoneRules {
    // MARK: compVersions

    /// `compVersions(version1, version2)`: -1, 0 or 1. The phone updates iff
    /// `compare(FIRMWARE_VERSION, serverVersion) < 0`.
    ///
    /// - any `db` in either string: 0 when the strings are equal, else -1 (always "older");
    /// - otherwise `sscanf("%u.%u.%urc%u")` when the string contains `rc`, else `"%u.%u.%u"`;
    ///   fields that do not parse stay 0, so `0.8.30rc1` is *newer* than `0.8.30`.
    static func compare(_ version1: String, _ version2: String) -> Int {
        let a = cString(version1), b = cString(version2)
        if contains(a, "db") || contains(b, "db") {
            return a == b ? 0 : -1
        }
        let left = numbers(a), right = numbers(b)
        for (x, y) in zip(left, right) {
            if x < y { return -1 }
            if x > y { return 1 }
        }
        return 0
    }

    /// (major, minor, bugfix, rc) as the phone's `sscanf` reads them.
    static func numbers(_ bytes: [UInt8]) -> [UInt32] {
        let format: [ScanItem] =
            contains(bytes, "rc")
            ? [.unsigned, .literal(0x2E), .unsigned, .literal(0x2E), .unsigned, .literal(0x72), .literal(0x63), .unsigned]
            : [.unsigned, .literal(0x2E), .unsigned, .literal(0x2E), .unsigned]
        var values = scan(bytes, format)
        while values.count < 4 { values.append(0) }
        return values
    }

    enum ScanItem { case unsigned, literal(UInt8) }

    /// A minimal `sscanf` for `%u` and literal characters (newlib: `%u` skips white space, takes
    /// an optional sign and goes through `strtoul`, which saturates at ULONG_MAX = 2³²−1 on the
    /// 32-bit ESP32 and negates for `-`). Stops at the first mismatch; returns what was assigned.
    static func scan(_ bytes: [UInt8], _ format: [ScanItem]) -> [UInt32] {
        var i = 0
        var out: [UInt32] = []
        for item in format {
            switch item {
            case .literal(let c):
                guard i < bytes.count, bytes[i] == c else { return out }
                i += 1
            case .unsigned:
                while i < bytes.count, isSpace(bytes[i]) { i += 1 }
                var negative = false
                if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D {
                    negative = bytes[i] == 0x2D
                    i += 1
                }
                var value: UInt64 = 0
                var digits = 0
                var overflow = false
                while i < bytes.count, (0x30...0x39).contains(bytes[i]) {
                    value = value * 10 + UInt64(bytes[i] - 0x30)
                    if value > UInt64(UInt32.max) { overflow = true; value = UInt64(UInt32.max) }
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return out }
                if overflow {
                    out.append(UInt32.max)
                } else {
                    let v = UInt32(value)
                    out.append(negative ? 0 &- v : v)
                }
            }
        }
        return out
    }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (0x09...0x0D).contains(c) }

    // MARK: Reading the ini response

    /// What `Ota::loadIniFile` does with the raw response (status line, headers, body):
    /// it reads pieces with `readStringUntil('\r')`, fails on any piece whose `indexOf("404 Not
    /// Found") > 0`, starts the content at the first piece shorter than 2 bytes, and
    /// concatenates the pieces after it. Returns nil for the `-404` case.
    static func iniData(fromResponse raw: [UInt8]) -> [UInt8]? {
        var pieces: [ArraySlice<UInt8>] = []
        var start = 0
        for (index, byte) in raw.enumerated() where byte == 0x0D {
            pieces.append(raw[start..<index])
            start = index + 1
        }
        if start < raw.count { pieces.append(raw[start...]) }
        var content = false
        var data: [UInt8] = []
        let notFound = Array("404 Not Found".utf8)
        for piece in pieces {
            let text = cString(piece)
            if let at = firstIndex(of: notFound, in: text), at > 0 { return nil }
            if !content && text.count < 2 {
                content = true
            } else if content {
                data += text
            }
        }
        return data
    }

    // MARK: NanoIni section 0

    /// One key/value as NanoIni's `KeyValue(line, len)` makes it: the key is the bytes before
    /// the first `=` (nil when there is no `=` or it is the first byte), no trimming.
    struct KeyValue: Equatable {
        var key: [UInt8]?
        var value: [UInt8]
    }

    /// The key/values of section 0 of `NanoIni::Config(text)`: the text before the first `"\n["`
    /// (plus that newline). Empty when the text is empty (the phone then reads defaults).
    static func sectionZero(_ text: [UInt8]) -> [KeyValue] {
        let s = cString(text)
        guard !s.isEmpty else { return [] }
        let sectionEnd: Int
        if let next = firstIndex(of: [0x0A, 0x5B], in: s) { sectionEnd = next + 1 } else { sectionEnd = s.count }
        var ss = 0
        if s[0] == 0x5B {  // '[': a title line; skip it as Section(...) does
            var titleEnd = 1
            while titleEnd < s.count, s[titleEnd] != 0x5D, s[titleEnd] != 0x0A { titleEnd += 1 }
            if titleEnd > sectionEnd { titleEnd = sectionEnd }
            ss = titleEnd
            while ss < s.count, s[ss] == 0x5D || s[ss] == 0x0A { ss += 1 }
        }
        var out: [KeyValue] = []
        while ss < sectionEnd {
            var lineEnd = ss
            while lineEnd < sectionEnd, s[lineEnd] != 0x0A { lineEnd += 1 }
            out.append(keyValue(Array(s[ss..<lineEnd])))
            ss = lineEnd < sectionEnd ? lineEnd + 1 : sectionEnd
        }
        return out
    }

    static func keyValue(_ line: [UInt8]) -> KeyValue {
        guard let equal = line.firstIndex(of: 0x3D) else { return KeyValue(key: nil, value: line) }
        return KeyValue(key: equal > 0 ? Array(line[..<equal]) : nil, value: Array(line[(equal + 1)...]))
    }

    /// `fwVersion[0].getValueSafe(key, default)`: the first pair whose key matches exactly.
    static func value(_ key: String, in section: [KeyValue], default fallback: String) -> String {
        let wanted = Array(key.utf8)
        for pair in section where pair.key == wanted {
            return String(decoding: pair.value, as: UTF8.self)
        }
        return fallback
    }

    /// The manifest the phone acts on: `version` and `url` from section 0 (defaults "0").
    static func manifest(fromResponse raw: [UInt8]) -> (version: String, url: String)? {
        guard let data = iniData(fromResponse: raw) else { return nil }
        let section = sectionZero(data)
        return (value("version", in: section, default: "0"), value("url", in: section, default: "0"))
    }

    // MARK: helpers

    /// The bytes up to the first NUL (what C sees).
    static func cString<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        for b in bytes {
            if b == 0 { break }
            out.append(b)
        }
        return out
    }

    static func cString(_ text: String) -> [UInt8] { cString(Array(text.utf8)) }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        firstIndex(of: Array(needle.utf8), in: haystack) != nil
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty ? 0 : nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
        }
        return nil
    }
}
