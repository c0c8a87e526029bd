import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import OTAMeshTrust

/// Files under a base URL as a TUF ``RemoteFiles`` source. A body is collected with a hard
/// upper bound, so a server that sends endless data is cut off at `maxLength` bytes.
public struct HTTPFiles: RemoteFiles {
    public let baseURL: String
    public let client: HTTPClient
    public let timeout: TimeAmount
    /// Sent with every request, e.g. `("Authorization", "Bearer …")` for the admin API.
    public let headers: [(name: String, value: String)]

    public init(baseURL: String, client: HTTPClient = .shared, timeout: TimeAmount = .seconds(30), headers: [(name: String, value: String)] = []) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.client = client
        self.timeout = timeout
        self.headers = headers
    }

    public func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        try await request(path, method: .GET, maxLength: maxLength)
    }

    /// POSTs to `path` with an empty body (an admin action) and returns the answer.
    public func post(_ path: String, maxLength: Int64 = 1 << 20) async throws(TrustError) -> [UInt8] {
        try await request(path, method: .POST, maxLength: maxLength)
    }

    /// An answer of any status, for callers that tell the statuses apart themselves (the admin API).
    public struct Answer: Sendable {
        public let status: Int
        public let body: [UInt8]
        public let contentType: String?
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends one request and returns the answer whatever its status; throws only when there is
    /// no answer (connection, timeout) or its body exceeds `maxLength`.
    /// `query` (already encoded, without `?`) is appended as it is.
    public func exchange(
        _ path: String, query: String? = nil, method: String = "GET", body: [UInt8]? = nil, contentType: String? = nil,
        maxLength: Int64 = 64 << 20
    ) async throws(TrustError) -> Answer {
        let url = "\(baseURL)/\(Self.escapePath(path))" + (query.map { "?\($0)" } ?? "")
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for header in headers { request.headers.add(name: header.name, value: header.value) }
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            request.headers.replaceOrAdd(name: "Content-Type", value: contentType ?? "application/json")
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw .fetch(file: path, reason: "\(url): \(error)")
        }
        if let declared = response.headers.first(name: "content-length").flatMap(Int64.init), declared > maxLength {
            throw .tooLarge(file: path, limit: maxLength)
        }
        do {
            let collected = try await response.body.collect(upTo: Int(clamping: maxLength))
            return Answer(
                status: Int(response.status.code), body: Array(collected.readableBytesView),
                contentType: response.headers.first(name: "content-type"))
        } catch is NIOTooManyBytesError {
            throw .tooLarge(file: path, limit: maxLength)
        } catch {
            throw .fetch(file: path, reason: "\(url): \(error)")
        }
    }

    func request(_ path: String, method: HTTPMethod, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        let url = "\(baseURL)/\(Self.escapePath(path))"
        var request = HTTPClientRequest(url: url)
        request.method = method
        for header in headers { request.headers.add(name: header.name, value: header.value) }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw .fetch(file: path, reason: "\(url): \(error)")
        }
        switch response.status.code {
        case 200: break
        case 403, 404: throw .notFound(file: path)
        default: throw .fetch(file: path, reason: "\(url): HTTP \(response.status.code)")
        }
        if let declared = response.headers.first(name: "content-length").flatMap(Int64.init), declared > maxLength {
            throw .tooLarge(file: path, limit: maxLength)
        }
        do {
            let body = try await response.body.collect(upTo: Int(clamping: maxLength))
            return Array(body.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw .tooLarge(file: path, limit: maxLength)
        } catch {
            throw .fetch(file: path, reason: "\(url): \(error)")
        }
    }

    /// Percent-encodes each path segment (target paths may hold any character but `/`; an
    /// existing `%` escape in a consistent-snapshot name is kept).
    public static func escapePath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false)
            .map { PercentEncoding.encode($0, alsoAllowed: "%") }.joined(separator: "/")
    }
}
