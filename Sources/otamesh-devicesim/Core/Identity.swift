/// A device's identity: its station MAC (derived from the run's MAC base and the device index)
/// and what the cores derive from it. Pure.
struct DeviceIdentity: Sendable, Equatable {
    let index: Int
    let mac: [UInt8]

    /// Device `index` of a fleet whose first MAC is `base` (the index is added to the low 24
    /// bits, so up to 16 777 216 distinct devices per base).
    init(index: Int, base: [UInt8]) {
        precondition(base.count == 6)
        self.index = index
        let low = (UInt32(base[3]) << 16 | UInt32(base[4]) << 8 | UInt32(base[5])) &+ UInt32(truncatingIfNeeded: index)
        mac = [base[0], base[1], base[2], UInt8(low >> 16 & 0xFF), UInt8(low >> 8 & 0xFF), UInt8(low & 0xFF)]
    }

    /// The first MAC of a fleet when `--mac-base` is not given: the family's vendor prefix, then
    /// the process id in the upper 12 of the low 24 bits — fleets run at once have distinct ids,
    /// so their devices never share a MAC (4 096 devices per fleet before two ranges could meet).
    static func defaultBase(esp8266: Bool, processID: Int32) -> String {
        let prefix: [UInt8] = esp8266 ? [0x5C, 0xCF, 0x7F] : [0x24, 0x0A, 0xC4]
        let low = (UInt32(bitPattern: processID) & 0xFFF) << 12
        return format(prefix + [UInt8(low >> 16 & 0xFF), UInt8(low >> 8 & 0xFF), UInt8(low & 0xFF)], upper: true)
    }

    /// `WiFi.macAddress()`: `%02X:%02X:…` (upper case, colons).
    var macUpper: String { Self.format(mac, upper: true) }
    /// The gateway's normalised device id (lower case, colons).
    var id: String { Self.format(mac, upper: false) }

    /// ESP8266 `WiFi.softAPmacAddress()`: the station MAC with the locally-administered bit
    /// (first octet + 2, the SDK default `5E:CF:7F…` for `5C:CF:7F…`).
    var esp8266SoftAPMAC: String { Self.format([mac[0] &+ 2] + mac[1...], upper: true) }
    /// ESP32 `WiFi.softAPmacAddress()`: base MAC + 1 in the last octet (esp_read_mac(ESP_MAC_WIFI_SOFTAP)).
    var esp32SoftAPMAC: String { Self.format(Array(mac[0..<5]) + [mac[5] &+ 1], upper: true) }
    /// ESP8266 `ESP.getChipId()`: the low 24 bits of the MAC, decimal.
    var esp8266ChipID: String { String(UInt32(mac[3]) << 16 | UInt32(mac[4]) << 8 | UInt32(mac[5])) }

    static func format(_ bytes: [UInt8], upper: Bool) -> String {
        let digits: [Character] = Array(upper ? "0123456789ABCDEF" : "0123456789abcdef")
        return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]]) }.joined(separator: ":")
    }

    /// Parses `AA:BB:CC:DD:EE:FF` (or `-`/no separators).
    static func parseMAC(_ text: String) -> [UInt8]? {
        let hex = text.filter { $0.isHexDigit }
        guard hex.count == 12, text.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "-" }) else { return nil }
        var out: [UInt8] = []
        var chars = Array(hex)
        while !chars.isEmpty {
            guard let byte = UInt8(String(chars.prefix(2)), radix: 16) else { return nil }
            out.append(byte)
            chars.removeFirst(2)
        }
        return out
    }
}

/// Latency percentiles (nearest-rank).
enum Percentiles {
    static func value(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }
}
