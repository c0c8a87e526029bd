import OTAMeshCommon

/// An ESP8266 NONOS IoT_Demo firmware version, `[v|b]N.N.NtPTYPE(o|l|a|n)`,
/// e.g. `v1.0.2t45772(a)` (Espressif FOTA guide, Appendix I).
public struct ESP8266FOTAVersion: Sendable, Hashable, CustomStringConvertible {
    /// `v` (formal release) or `b` (beta).
    public enum Kind: String, Sendable { case release = "v", beta = "b" }
    /// Which upgrade paths the firmware supports.
    public enum Upgrade: String, Sendable {
        case online = "o", local = "l", all = "a", none = "n"
    }

    public let kind: Kind
    public let major: UInt32
    public let minor: UInt32
    public let revision: UInt32
    /// The Espressif Cloud product type (`device_type`).
    public let productType: UInt32
    public let upgrade: Upgrade

    /// Parses the rule; accepts the guide's template spelling with a dot before `t`.
    public init?(_ text: String) {
        var chars = Substring(text)
        guard let first = chars.first, let kind = Kind(rawValue: String(first)) else { return nil }
        chars = chars.dropFirst()
        guard let t = chars.firstIndex(of: "t") else { return nil }
        var numberPart = chars[..<t]
        if numberPart.hasSuffix(".") { numberPart = numberPart.dropLast() }
        let numbers = numberPart.split(separator: ".", omittingEmptySubsequences: false)
        guard numbers.count == 3, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }),
            let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]), let revision = UInt32(numbers[2])
        else { return nil }
        let tail = chars[chars.index(after: t)...]
        guard let open = tail.firstIndex(of: "("), tail.hasSuffix(")") else { return nil }
        let ptype = tail[..<open]
        let flag = tail[tail.index(after: open)..<tail.index(before: tail.endIndex)]
        guard !ptype.isEmpty, ptype.allSatisfy(\.isASCIIDigit), let productType = UInt32(ptype),
            let upgrade = Upgrade(rawValue: String(flag))
        else { return nil }
        self.kind = kind
        self.major = major
        self.minor = minor
        self.revision = revision
        self.productType = productType
        self.upgrade = upgrade
    }

    public var description: String {
        "\(kind.rawValue)\(major).\(minor).\(revision)t\(productType)(\(upgrade.rawValue))"
    }
}

/// A firmware version in whichever scheme its string follows, tried in order:
/// SemVer 2.0, the ESP8266 FOTA rule, then a dotted-number fallback (`1.2`, `v3.0.1.7`).
///
/// Versions compare only within one scheme (and, for ESP8266, one product type);
/// ``FirmwareVersion/compare(_:_:)`` returns nil when two versions are not comparable.
public enum FirmwareVersion: Sendable, Hashable, CustomStringConvertible {
    case semantic(SemanticVersion)
    case esp8266(ESP8266FOTAVersion)
    /// Numeric components and the text that followed them (compared only when equal).
    case dotted([UInt64], suffix: String)

    /// Parses any string; returns nil only when no scheme matches.
    public init?(_ text: String) {
        let trimmed = text.trimmingWhitespace()
        if let semver = SemanticVersion(trimmed) {
            self = .semantic(semver)
        } else if let esp = ESP8266FOTAVersion(trimmed) {
            self = .esp8266(esp)
        } else if let dotted = Self.parseDotted(trimmed) {
            self = dotted
        } else {
            return nil
        }
    }

    /// The scheme's name, as `image inspect` reports it.
    public var scheme: String {
        switch self {
        case .semantic: "semver"
        case .esp8266: "esp8266"
        case .dotted: "dotted"
        }
    }

    public var description: String {
        switch self {
        case .semantic(let v): v.description
        case .esp8266(let v): v.description
        case let .dotted(numbers, suffix): numbers.map(String.init).joined(separator: ".") + suffix
        }
    }

    /// Orders two versions, or returns nil when they are of different schemes, different
    /// ESP8266 product types, or dotted versions that differ only in their text suffix.
    public static func compare(_ lhs: FirmwareVersion, _ rhs: FirmwareVersion) -> ComparisonResult? {
        switch (lhs, rhs) {
        case let (.semantic(a), .semantic(b)):
            return a < b ? .ascending : (b < a ? .descending : .same)
        case let (.esp8266(a), .esp8266(b)):
            guard a.productType == b.productType else { return nil }
            let ka = (a.major, a.minor, a.revision), kb = (b.major, b.minor, b.revision)
            if ka != kb { return ka < kb ? .ascending : .descending }
            // Same value: a beta precedes the formal release (the cloud forbids both at once).
            if a.kind == b.kind { return .same }
            return a.kind == .beta ? .ascending : .descending
        case let (.dotted(a, sa), .dotted(b, sb)):
            let width = max(a.count, b.count)
            let pa = a + Array(repeating: 0, count: width - a.count)
            let pb = b + Array(repeating: 0, count: width - b.count)
            if pa != pb { return pa.lexicographicallyPrecedes(pb) ? .ascending : .descending }
            return sa == sb ? .same : nil
        case (.semantic(let a), .dotted(let b, let suffix)) where suffix.isEmpty:
            // "1.2" from a device against "1.2.0" from a release: compare the numbers; a
            // prerelease sorts below the plain number it precedes.
            guard let order = compare(.dotted([a.major, a.minor, a.patch], suffix: ""), .dotted(b, suffix: "")) else { return nil }
            return order == .same && a.isPrerelease ? .ascending : order
        case (.dotted(_, let suffix), .semantic) where suffix.isEmpty:
            return compare(rhs, lhs).map(\.reversed)
        default:
            return nil
        }
    }

    /// True when `candidate` is strictly newer than `self`; false when older, equal or not comparable.
    public func isOlder(than candidate: FirmwareVersion) -> Bool {
        Self.compare(self, candidate) == .ascending
    }

    private static func parseDotted(_ text: String) -> FirmwareVersion? {
        var body = Substring(text)
        if body.first == "v" || body.first == "V" { body = body.dropFirst() }
        var numbers: [UInt64] = []
        var current = ""
        var index = body.startIndex
        while index < body.endIndex {
            let c = body[index]
            if c.isASCIIDigit {
                current.append(c)
            } else if c == ".", !current.isEmpty, body.index(after: index) < body.endIndex,
                body[body.index(after: index)].isASCIIDigit
            {
                guard let n = UInt64(current) else { return nil }
                numbers.append(n)
                current = ""
            } else {
                break
            }
            index = body.index(after: index)
        }
        guard !current.isEmpty, let last = UInt64(current) else { return nil }
        numbers.append(last)
        return .dotted(numbers, suffix: String(body[index...]))
    }
}

/// Result of ordering two versions.
public enum ComparisonResult: Sendable, Equatable {
    case ascending, same, descending

    var reversed: ComparisonResult {
        switch self {
        case .ascending: .descending
        case .same: .same
        case .descending: .ascending
        }
    }
}

/// Firmware variant compatibility (projectMM's `isCompatible()`): strip an `-eth…` suffix
/// from both variant keys, then the keys must be equal. So `esp32` ~ `esp32-eth` ~
/// `esp32-eth-wifi`, while `esp32s3-n16r8` matches only itself.
public enum VariantCompatibility {
    /// The key with any `-eth…` suffix removed.
    public static func identity(_ variant: String) -> String {
        let chars = Array(variant.utf8)
        let marker = Array("-eth".utf8)
        guard chars.count >= marker.count else { return variant }
        for start in 0...(chars.count - marker.count) where chars[start..<(start + marker.count)].elementsEqual(marker) {
            return String(decoding: chars[..<start], as: UTF8.self)
        }
        return variant
    }

    /// True when firmware built for `firmware` may be installed on a device running `device`.
    public static func isCompatible(device: String, firmware: String) -> Bool {
        identity(device) == identity(firmware)
    }
}
