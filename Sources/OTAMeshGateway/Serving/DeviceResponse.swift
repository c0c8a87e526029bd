import OTAMeshTransfer

/// What a device asked for, as the pure serving core sees it: no sockets, no NIO types.
public struct DeviceRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded per segment by the caller.
    public var path: String
    public var query: [String: String]
    /// Header names lower-cased; the first value of each name.
    public var headers: [String: String]
    /// The client's IP address (no port).
    public var clientAddress: String
    /// True when the request came over TLS (:8443).
    public var isTLS: Bool

    public init(
        method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:],
        clientAddress: String = "127.0.0.1", isTLS: Bool = false
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.clientAddress = clientAddress
        self.isTLS = isTLS
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// Splits a request target (`/a/b%20c?x=1&y`) into decoded path and query.
    public static func splitTarget(_ target: String) -> (path: String, query: [String: String]) {
        // Byte-wise: this runs for every request (Character-wise splitting costs grapheme breaking).
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else {
            return (percentDecode(Substring(target), plusIsSpace: false), [:])
        }
        let path = String(target[..<mark])
        let rest = target[target.utf8.index(after: mark)...]
        var query: [String: String] = [:]
        do {
            for pair in rest.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = percentDecode(kv[0], plusIsSpace: true)
                if query[key] == nil { query[key] = kv.count == 2 ? percentDecode(kv[1], plusIsSpace: true) : "" }
            }
        }
        return (percentDecode(Substring(path), plusIsSpace: false), query)
    }

    /// Decodes `%XX` escapes; invalid escapes are kept literally (they then match nothing).
    static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String {
        // Scan bytes: String.contains(String) would go through Foundation (CFStringFind) per request.
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            let byte = utf8[i]
            if byte == UInt8(ascii: "%"), i + 2 < utf8.count, let hi = hexValue(utf8[i + 1]), let lo = hexValue(utf8[i + 2]) {
                bytes.append(hi << 4 | lo)
                i += 3
            } else {
                bytes.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// What the server sends back. The NIO shell writes it verbatim; for HEAD it writes the
/// headers only (they are always exactly the GET headers, Content-Length included).
public struct DeviceResponse: Sendable, Equatable {
    /// A piece of the body: literal bytes, or a byte range of the served blob (sent zero-copy).
    public enum Segment: Sendable, Equatable {
        case bytes([UInt8])
        case file(ByteRange)

        var count: Int64 {
            switch self {
            case .bytes(let bytes): Int64(bytes.count)
            case .file(let range): range.count
            }
        }
    }

    public var status: Int
    public var headers: [(String, String)]
    /// The committed blob the `.file` segments read from.
    public var blobSHA256: String?
    public var body: [Segment]
    /// The device the body goes to, when the route knows it (rollouts follow its download).
    public var device: String?

    public init(status: Int, headers: [(String, String)] = [], blobSHA256: String? = nil, body: [Segment] = []) {
        self.status = status
        self.headers = headers
        self.blobSHA256 = blobSHA256
        self.body = body
    }

    /// Bytes the body holds (= Content-Length).
    public var contentLength: Int64 { body.reduce(0) { $0 + $1.count } }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public static func == (lhs: DeviceResponse, rhs: DeviceResponse) -> Bool {
        lhs.status == rhs.status && lhs.blobSHA256 == rhs.blobSHA256 && lhs.body == rhs.body
            && lhs.headers.map { "\($0.0): \($0.1)" } == rhs.headers.map { "\($0.0): \($0.1)" }
    }

    /// A small body with its type.
    public static func text(
        _ status: Int, _ body: String, type: String = "text/plain; charset=utf-8",
        extra: [(String, String)] = []
    ) -> DeviceResponse {
        DeviceResponse(status: status, headers: [("Content-Type", type)] + extra, body: [.bytes(Array(body.utf8))])
    }

    public static func empty(_ status: Int, extra: [(String, String)] = []) -> DeviceResponse {
        DeviceResponse(status: status, headers: extra)
    }

    public static func notFound(_ what: String) -> DeviceResponse { text(404, "not found: \(what)\n") }

    /// 503: the gateway cannot serve this now (out of descriptors, the blob just evicted).
    public static func unavailable(retryAfter seconds: Int) -> DeviceResponse {
        text(503, "busy: try again in \(seconds) s\n", extra: [("Retry-After", String(seconds))])
    }
}
