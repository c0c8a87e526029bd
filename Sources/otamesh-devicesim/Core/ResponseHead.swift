import OTAMeshCommon
import OTAMeshFirmware

/// An HTTP/1.x response head as the device firmwares read it: status code, headers in order
/// (names compared case-insensitively, as Arduino HTTPClient and esp_http_client do), and the
/// raw bytes of the head for firmwares that search it byte for byte (NONOS FOTA). Pure.
struct ResponseHead: Sendable, Equatable {
    var version: String
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    /// The head exactly as received, up to and including the blank line.
    var raw: [UInt8]

    static func == (a: ResponseHead, b: ResponseHead) -> Bool {
        a.version == b.version && a.status == b.status && a.reason == b.reason && a.raw == b.raw
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    /// The first header with this name (case-insensitive), trimmed.
    func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// `Content-Length` as a non-negative integer, nil when absent or not a number.
    var contentLength: Int? {
        guard let text = header("content-length"), let value = Int(text), value >= 0 else { return nil }
        return value
    }

    var isChunked: Bool {
        header("transfer-encoding")?.lowercased().contains("chunked") ?? false
    }

    /// `Content-Range: bytes a-b/total` → total (esp_http_client_get_content_range).
    var contentRangeTotal: Int? {
        guard let text = header("content-range"), let slash = text.lastIndex(of: "/") else { return nil }
        return Int(text[text.index(after: slash)...].trimmingWhitespace())
    }

    /// Finds the end of the head (`\r\n\r\n`) in `buffer`; returns the index just past it.
    static func endOfHead(in buffer: [UInt8]) -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 0x0D && buffer[i + 1] == 0x0A && buffer[i + 2] == 0x0D && buffer[i + 3] == 0x0A {
            return i + 4
        }
        return nil
    }

    enum ParseError: Error, Equatable { case badStatusLine(String) }

    /// Parses a complete head (status line, header lines, blank line).
    static func parse(_ raw: [UInt8]) throws(ParseError) -> ResponseHead {
        let text = String(decoding: raw, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        while lines.last == "" { lines.removeLast() }
        guard let statusLine = lines.first else { throw .badStatusLine("") }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...999).contains(status) else {
            throw .badStatusLine(statusLine)
        }
        var headers: [(String, String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingWhitespace()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            headers.append((name, value))
        }
        return ResponseHead(
            version: String(parts[0]), status: status, reason: parts.count > 2 ? String(parts[2]) : "",
            headers: headers, raw: raw)
    }

    /// Whether the head contains `needle` byte for byte (case-sensitive), e.g. the NONOS FOTA
    /// library's `strstr(pusrdata, "Content-Length: ")`.
    func rawContains(_ needle: String) -> Bool {
        WiPhoneRules.firstIndex(of: Array(needle.utf8), in: raw) != nil
    }
}
