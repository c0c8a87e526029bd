/// A JSON string literal with the escapes RFC 8259 requires (for hand-written JSON lines: logs,
/// manifests, devicesim events).
public func jsonQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where isTerminalUnsafe(scalar): out += jsonEscape(scalar)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// Whether a character could drive a terminal or forge a line when printed: C0 controls, DEL,
/// C1 controls (U+009B is a one-byte CSI), format characters (bidirectional overrides, zero-width
/// marks) and the Unicode line and paragraph separators.
public func isTerminalUnsafe(_ scalar: Unicode.Scalar) -> Bool {
    let value = scalar.value
    return value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 || scalar.properties.generalCategory == .format
}

/// `text` safe to print on a terminal: every ``isTerminalUnsafe(_:)`` character shown as
/// `\u{XX}`, so a device's strings can neither move the cursor, recolour or retitle the
/// terminal, reorder text nor forge extra lines.
public func terminalSafe(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        if isTerminalUnsafe(scalar) { out += "\\u{" + String(scalar.value, radix: 16) + "}" } else { out.unicodeScalars.append(scalar) }
    }
    return out
}

/// JSON text with every ``isTerminalUnsafe(_:)`` character escaped as `\uXXXX` (JSON encoders
/// leave DEL, C1 and format characters raw; they can only stand inside strings, where the escape
/// means the same).
public func terminalSafeJSON(_ json: String) -> String {
    guard json.unicodeScalars.contains(where: isTerminalUnsafe) else { return json }
    var out = ""
    for scalar in json.unicodeScalars {
        if isTerminalUnsafe(scalar) { out += jsonEscape(scalar) } else { out.unicodeScalars.append(scalar) }
    }
    return out
}

func jsonEscape(_ scalar: Unicode.Scalar) -> String {
    let hex = String(scalar.value, radix: 16)
    return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
