import OTAMeshCommon
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
    /// The body of a PUT or POST (hawkBit DDI's feedback and configData), at most
    /// ``DDI/maxBody`` bytes; empty for every other request.
    public var body: [UInt8] = []

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
            return (PercentEncoding.decode(Substring(target), plusIsSpace: false), [:])
        }
        let path = String(target[..<mark])
        let rest = target[target.utf8.index(after: mark)...]
        var query: [String: String] = [:]
        do {
            for pair in rest.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = PercentEncoding.decode(kv[0], plusIsSpace: true)
                if query[key] == nil { query[key] = kv.count == 2 ? PercentEncoding.decode(kv[1], plusIsSpace: true) : "" }
            }
        }
        return (PercentEncoding.decode(Substring(path), plusIsSpace: false), query)
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
