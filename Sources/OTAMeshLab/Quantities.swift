/// An IPv4 address as a 32-bit number.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses dotted-quad text (`10.77.0.1`); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        self.value = value
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// An IPv4 subnet in CIDR form (`10.77.0.0/24`).
public struct IPv4Subnet: Sendable, Hashable, CustomStringConvertible {
    public var network: IPv4Address
    public var prefixLength: Int

    /// Parses `A.B.C.D/N` with N in 8…30 and no host bits set.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let length = Int(parts[1]),
            (8...30).contains(length)
        else { return nil }
        let mask = Self.mask(length)
        guard address.value & ~mask == 0 else { return nil }
        network = address
        prefixLength = length
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - length) }

    public var description: String { "\(network)/\(prefixLength)" }

    /// The host with this number (1 = first usable), nil if it falls outside the usable range.
    public func host(_ number: Int) -> IPv4Address? {
        let size = UInt64(1) << (32 - prefixLength)
        guard number >= 1, UInt64(number) < size - 1 else { return nil }
        return IPv4Address(network.value + UInt32(number))
    }

    /// Whether the address is a usable host of this subnet (not the network or broadcast address).
    public func containsHost(_ address: IPv4Address) -> Bool {
        let mask = Self.mask(prefixLength)
        let hostBits = address.value & ~mask
        return address.value & mask == network.value && hostBits != 0 && hostBits != ~mask
    }

    public func overlaps(_ other: IPv4Subnet) -> Bool {
        let mask = Self.mask(min(prefixLength, other.prefixLength))
        return network.value & mask == other.network.value & mask
    }

    /// Private-use space (RFC 1918): lab addresses never look like someone else's network.
    public var isPrivate: Bool {
        [IPv4Subnet("10.0.0.0/8"), IPv4Subnet("172.16.0.0/12"), IPv4Subnet("192.168.0.0/16")]
            .compactMap { $0 }
            .contains { $0.prefixLength <= prefixLength && $0.overlaps(self) }
    }
}

/// A link rate in bits per second, written as tc writes it (`100mbit`, `512kbit`).
public struct LinkRate: Sendable, Hashable, CustomStringConvertible {
    public var bitsPerSecond: UInt64

    public init(bitsPerSecond: UInt64) { self.bitsPerSecond = bitsPerSecond }

    /// Parses `N[.N](bit|kbit|mbit|gbit)`; nil otherwise or when below 8 kbit/s.
    public init?(_ text: String) {
        let units: [(String, Double)] = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1)]
        let lower = text.lowercased()
        guard let (unit, scale) = units.first(where: { lower.hasSuffix($0.0) }),
            let number = Double(lower.dropLast(unit.count)), number.isFinite, number > 0
        else { return nil }
        let bits = number * scale
        guard bits >= 8_000, bits <= 100e9 else { return nil }
        bitsPerSecond = UInt64(bits.rounded())
    }

    /// tc's spelling: plain bits per second.
    public var description: String { "\(bitsPerSecond)bit" }

    /// A short human spelling: `100mbit`, `1.5gbit`.
    public var text: String {
        for (unit, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)] where Double(bitsPerSecond) >= scale {
            return "\(LabDuration.number(Double(bitsPerSecond) / scale))\(unit)"
        }
        return "\(bitsPerSecond)bit"
    }
}

/// A duration in seconds, written `500ms`, `2s`, `1m`, `1h`, `7d` or a bare number of seconds.
public enum LabDuration {
    public static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        let lower = text.lowercased().trimmingCharacters(in: " ")
        if let bare = Double(lower) { return bare.isFinite && bare >= 0 ? bare : nil }
        guard let (unit, scale) = units.first(where: { lower.hasSuffix($0.0) }),
            let number = Double(lower.dropLast(unit.count)), number.isFinite, number >= 0
        else { return nil }
        return number * scale
    }

    /// tc's spelling: whole microseconds (`1500us`), exact for any millisecond value.
    public static func tc(_ seconds: Double) -> String { "\(Int((seconds * 1_000_000).rounded()))us" }

    /// A number without a needless fraction: `20`, `0.5`, `1.25`.
    public static func number(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
    }

    /// A short human spelling: `1.5s`, `250ms`.
    public static func text(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let rounded = (seconds * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))s" : "\(rounded)s"
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
