/// Where a request goes: scheme, host, port, and the request target (path + query). Pure.
struct Endpoint: Sendable, Equatable {
    var scheme: String
    var host: String
    var port: Int
    /// Path and query as sent on the request line (`/v1/…?…`).
    var target: String

    var isTLS: Bool { scheme == "https" }

    /// `host[:port]`, the port omitted when it is 80 or 443 (the rule of Arduino HTTPClient
    /// `sendHeader` and esp_http_client `_get_host_header`, whatever the scheme).
    var hostHeader: String { port == 80 || port == 443 ? host : "\(host):\(port)" }

    /// Parses `http(s)://host[:port][/path][?query]` (no user info, IPv4 or name hosts).
    static func parse(_ url: String) -> Endpoint? {
        let scheme: String
        var rest: Substring
        if url.hasPrefix("http://") {
            scheme = "http"
            rest = url.dropFirst(7)
        } else if url.hasPrefix("https://") {
            scheme = "https"
            rest = url.dropFirst(8)
        } else {
            return nil
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = authority[..<colon]
        }
        guard !host.isEmpty, !host.contains("@") else { return nil }
        var target = String(rest)
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        return Endpoint(scheme: scheme, host: String(host), port: port, target: target)
    }

    /// The same server, another request target.
    func with(target: String) -> Endpoint {
        var copy = self
        copy.target = target
        return copy
    }

    /// A `Location` header resolved against this endpoint (absolute URL or absolute path).
    func resolving(_ location: String) -> Endpoint? {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return Endpoint.parse(location) }
        if location.hasPrefix("/") { return with(target: location) }
        return nil
    }

    var url: String { "\(scheme)://\(hostHeader)\(target)" }

    /// Whether `host` is an IPv4 literal (no SNI, and the certificate is checked for the IP).
    var hostIsIPAddress: Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil } || host.contains(":")
    }
}

/// Percent-encoding for query values (RFC 3986 unreserved characters pass).
enum QueryEncoding {
    static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
            }
        }
        return out
    }

    /// Only what cannot stand in a request line (controls, space, non-ASCII, `%`) is escaped.
    static func requestLineSafe(_ text: String) -> String {
        var out = ""
        let hex = Array("0123456789ABCDEF")
        for byte in text.utf8 {
            if byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: "%") {
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0x0F)])
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }
}
