import Crypto
import OTAMeshFirmware

/// The two wire dialects of the `arduino-ota` push family (the registry option `dialect`).
public enum ArduinoOTADialect: String, Sendable, CaseIterable {
    /// Classic ArduinoOTA (the ESP8266 and ESP32 Arduino cores, host tool `espota.py`): a UDP
    /// invitation, then the device connects back over TCP and the host streams the image.
    case arduino
    /// ESPHome's native OTA protocol, version 1 (what the PyPI package `espota` 0.5.0 speaks):
    /// one TCP connection to the device's OTA port carrying a byte-coded handshake and the image.
    case esphome
}

/// Messages of both dialects, built and read without sockets. Device answers are untrusted
/// bytes: every reader here takes any input and never traps.
public enum ArduinoOTAWire {
    // MARK: classic ArduinoOTA (UDP invitation, TCP back)

    /// Invitation commands (ArduinoOTA.h `U_FLASH`, `U_SPIFFS`, `U_AUTH`).
    public static let flashCommand = 0
    public static let spiffsCommand = 100
    public static let authCommand = 200

    /// The invitation datagram: `"<cmd> <host-port> <size> <md5hex>\n"`.
    public static func invitation(command: Int = flashCommand, hostPort: Int, size: Int64, md5: String) -> [UInt8] {
        Array("\(command) \(hostPort) \(size) \(md5)\n".utf8)
    }

    /// What the device answered to an invitation or to the authentication message.
    public enum Reply: Sendable, Equatable {
        /// `OK`: go ahead (ESP8266: Update.begin succeeded; ESP32: it is called after this).
        case ok
        /// `AUTH <nonce>`: the device has a password; answer the challenge.
        case auth(nonce: String)
        /// `Authentication Failed`.
        case authenticationFailed
        /// `ERR: <Update.printError>` (ESP8266: Update.begin failed, e.g. not enough space).
        case beginFailed(String)
        /// Anything else, as printable text.
        case other(String)
    }

    public static func reply(_ datagram: [UInt8]) -> Reply {
        let text = printable(datagram)
        if text == "OK" { return .ok }
        if text.hasPrefix("AUTH ") {
            let nonce = String(text.dropFirst(5)).trimmingSpaces()
            return nonce.count == 32 && nonce.allSatisfy(\.isHexDigit) ? .auth(nonce: nonce) : .other(text)
        }
        if text == "Authentication Failed" { return .authenticationFailed }
        if text.hasPrefix("ERR:") { return .beginFailed(String(text.dropFirst(4)).trimmingSpaces()) }
        return .other(text)
    }

    /// The answer to `AUTH <nonce>`: `"200 <cnonce> <result>\n"` with result =
    /// md5hex(md5hex(password) ":" nonce ":" cnonce), as ArduinoOTA.cpp checks it (the device
    /// stores md5hex(password); it only checks that cnonce is 32 characters).
    static func authMessage(password: String, nonce: String, cnonce: String) -> [UInt8] {
        let result = md5Hex(Array("\(md5Hex(Array(password.utf8))):\(nonce):\(cnonce)".utf8))
        return Array("\(authCommand) \(cnonce) \(result)\n".utf8)
    }

    /// The device's TCP answers while the image flows: ASCII decimal counts of the bytes it
    /// wrote (concatenated, no separators), then `OK` after Update.end, or Update.printError's
    /// text (`ERROR[8]: MD5 Failed…` on ESP8266, `MD5 Check Failed` on ESP32) and a close.
    public struct Acknowledgements: Sendable, Equatable {
        /// Count bytes (digits) received.
        public private(set) var digits = 0
        /// Everything after the first non-digit, printable, at most 200 characters.
        public private(set) var tail = ""

        public init() {}

        public mutating func add(_ bytes: [UInt8]) {
            for byte in bytes {
                if tail.isEmpty, (0x30...0x39).contains(byte) {
                    digits += 1
                } else if tail.count < 200, (0x20..<0x7F).contains(byte) || byte == 0x0A {
                    tail.append(Character(Unicode.Scalar(byte)))
                }
            }
        }

        /// The device said `OK` (Update.end succeeded).
        public var ok: Bool { tail.trimmingSpaces() == "OK" }
        /// The device printed something else: its error text (nil while there is none).
        public var error: String? {
            let text = tail.trimmingSpaces()
            return text.isEmpty || text == "OK" || "OK".hasPrefix(text) ? nil : text.replacingNewlines()
        }
        /// The error text is complete (the device ends it with a newline).
        public var errorComplete: Bool { error != nil && tail.contains("\n") }
    }

    // MARK: ESPHome native OTA v1

    public static let esphomeMagic: [UInt8] = [0x6C, 0x26, 0xF7, 0x5C, 0x45]
    public static let esphomeVersion: UInt8 = 1

    /// ESPHome's `OTAResponseTypes`.
    public enum ESPHomeCode {
        public static let ok: UInt8 = 0
        public static let requestAuth: UInt8 = 1
        public static let headerOK: UInt8 = 64
        public static let authOK: UInt8 = 65
        public static let updatePrepareOK: UInt8 = 66
        public static let binMD5OK: UInt8 = 67
        public static let receiveOK: UInt8 = 68
        public static let updateEndOK: UInt8 = 69
        public static let errorMagic: UInt8 = 128
        public static let errorUpdatePrepare: UInt8 = 129
        public static let errorAuthInvalid: UInt8 = 130
        public static let errorWritingFlash: UInt8 = 131
        public static let errorUpdateEnd: UInt8 = 132
        public static let errorInvalidBootstrapping: UInt8 = 133
        public static let errorWrongCurrentFlashConfig: UInt8 = 134
        public static let errorWrongNewFlashConfig: UInt8 = 135
        public static let errorESP8266NotEnoughSpace: UInt8 = 136
        public static let errorESP32NotEnoughSpace: UInt8 = 137
        public static let errorUnknown: UInt8 = 255
    }

    /// What an ESPHome error code means, as the `espota` host tool explains it; nil for a byte
    /// that is no error code.
    public static func esphomeError(_ code: UInt8) -> String? {
        switch code {
        case ESPHomeCode.errorMagic: "invalid magic bytes (error 128): not an ESPHome native OTA port?"
        case ESPHomeCode.errorUpdatePrepare: "could not prepare the flash for the update (error 129): is the binary too big?"
        case ESPHomeCode.errorAuthInvalid: "authentication invalid (error 130): the device rejected the configured password"
        case ESPHomeCode.errorWritingFlash: "writing the OTA data to flash failed (error 131)"
        case ESPHomeCode.errorUpdateEnd: "finishing the update failed (error 132): MD5 mismatch or an image the device does not accept"
        case ESPHomeCode.errorInvalidBootstrapping: "a manual reset is required on the first OTA update after flashing over USB (error 133)"
        case ESPHomeCode.errorWrongCurrentFlashConfig: "the device was flashed with the wrong flash size (error 134)"
        case ESPHomeCode.errorWrongNewFlashConfig: "the device does not have the flash size the image asks for (error 135)"
        case ESPHomeCode.errorESP8266NotEnoughSpace: "not enough space for the image (error 136, ESP8266)"
        case ESPHomeCode.errorESP32NotEnoughSpace: "the OTA partition is too small for the image (error 137, ESP32)"
        case ESPHomeCode.errorUnknown: "unknown error from the device (error 255)"
        default: nil
        }
    }

    /// The answer to the ESPHome challenge: cnonce (32) then md5hex(password + nonce + cnonce).
    static func esphomeAuth(password: String, nonce: String, cnonce: String) -> [UInt8] {
        Array(cnonce.utf8) + Array(md5Hex(Array((password + nonce + cnonce).utf8)).utf8)
    }

    /// The image size, 4 bytes big-endian.
    public static func esphomeSize(_ size: Int64) -> [UInt8] {
        let value = UInt32(clamping: size)
        return [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    // MARK: shared

    public static func md5Hex(_ bytes: [UInt8]) -> String {
        Insecure.MD5.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// The chip an image is built for, from its first bytes (at least 24): `esp8266` for an
    /// ESP8266 image, the ESP32-family chip of the extended header; nil for anything else.
    public static func chip(ofHeader header: [UInt8]) -> String? {
        switch ImageInspector.detect(header[...]) {
        case .esp8266:
            return "esp8266"
        case .esp32App where header.count >= 14:
            return ESPChip.known[UInt16(header[12]) | UInt16(header[13]) << 8]?.name
        default:
            return nil
        }
    }

    /// The chip of a firmware variant key (`esp32-eth` → `esp32`, `esp32s3-n16r8` → `esp32s3`,
    /// `esp8266` → `esp8266`); nil when the key names no chip otamesh knows.
    public static func chip(ofVariant variant: String) -> String? {
        let head = String(variant.lowercased().split(separator: "-").first ?? "")
        if head == "esp8266" { return head }
        return ESPChip.named(head)?.name
    }

    /// A device's bytes as one line of printable text (at most 200 characters).
    static func printable(_ bytes: [UInt8]) -> String {
        var text = ""
        for byte in bytes.prefix(400) {
            if byte >= 0x20, byte < 0x7F { text.append(Character(Unicode.Scalar(byte))) } else if byte == 0x0A || byte == 0x0D { text.append(" ") }
        }
        return String(text.trimmingSpaces().prefix(200))
    }
}

extension String {
    func trimmingSpaces() -> String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return String(text)
    }

    fileprivate func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
