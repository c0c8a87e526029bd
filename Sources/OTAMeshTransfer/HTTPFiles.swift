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

    public init(baseURL: String, client: HTTPClient = .shared, timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.client = client
        self.timeout = timeout
    }

    public func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        try await request(path, method: .GET, maxLength: maxLength)
    }

    /// POSTs to `path` with an empty body (an admin action) and returns the answer.
    public func post(_ path: String, maxLength: Int64 = 1 << 20) async throws(TrustError) -> [UInt8] {
        try await request(path, method: .POST, maxLength: maxLength)
    }

    func request(_ path: String, method: HTTPMethod, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        let url = "\(baseURL)/\(Self.escapePath(path))"
        var request = HTTPClientRequest(url: url)
        request.method = method
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
