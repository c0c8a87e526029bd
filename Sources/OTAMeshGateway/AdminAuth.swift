import Crypto
import Foundation
import Hummingbird
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// The admin API's two bearer tokens: `admin` may do anything under `/api/v1`, `read-only` may
/// only GET and HEAD. Each lives in its own file (mode 0600, `DATA/keys/admin.token` and
/// `DATA/keys/read.token` unless configured), created with 32 random bytes (base64url) on first
/// start. Only SHA-256 digests of the tokens are kept in memory, so a comparison never depends
/// on where the bytes differ, nor on the presented token's length.
public struct AdminTokens: Sendable {
    public enum Role: String, Sendable, Equatable {
        case admin
        case readOnly = "read-only"
    }

    let adminDigest: [UInt8]
    let readDigest: [UInt8]

    public init(admin: String, readOnly: String) {
        adminDigest = Self.digest(admin)
        readDigest = Self.digest(readOnly)
    }

    /// The role a presented token carries, or nil for an unknown token. Both digests are
    /// compared in full every time (constant time, whatever matches).
    public func role(of presented: String) -> Role? {
        let digest = Self.digest(presented)
        let isAdmin = Self.constantTimeEqual(digest, adminDigest)
        let isRead = Self.constantTimeEqual(digest, readDigest)
        if isAdmin { return .admin }
        if isRead { return .readOnly }
        return nil
    }

    /// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive), or nil.
    public static func bearerToken(_ header: String) -> String? {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
        let token = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    static func digest(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }

    /// Equal-length byte strings compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// A new token: 32 random bytes from the system's CSPRNG, base64url without padding (43 characters).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return base64URL(bytes)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Shortest token a file may hold: a hand-written one must not be guessable.
    public static let minimumLength = 16

    /// A token file's token: its text without surrounding white space; 16 to 512 printable
    /// ASCII characters without spaces (it travels in an HTTP header).
    public static func read(_ path: String) throws(AdminTokenError) -> String {
        let bytes: [UInt8]
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        do throws(TrustError) { bytes = try DirectoryFiles(root: directory).read(name, maxLength: 4096) } catch {
            throw .unreadable(file: path, reason: Self.reason(error))
        }
        return try parse(bytes, file: path)
    }

    /// The token in a token file's bytes (see ``read(_:)``).
    public static func parse(_ bytes: [UInt8], file: String) throws(AdminTokenError) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw .invalid(file: file, reason: "empty") }
        guard text.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw .invalid(file: file, reason: "a token is one word of printable ASCII characters")
        }
        guard (minimumLength...512).contains(text.utf8.count) else {
            throw .invalid(file: file, reason: "a token needs \(minimumLength) to 512 characters, this one has \(text.utf8.count)")
        }
        return text
    }

    /// Reads both token files, first creating each that is missing (0600, directory 0700).
    /// Returns the tokens and the paths it created.
    public static func loadOrCreate(admin adminPath: String, readOnly readPath: String) throws(AdminTokenError) -> (tokens: AdminTokens, created: [String]) {
        var created: [String] = []
        for path in [adminPath, readPath] where access(path, F_OK) != 0 {
            do throws(TrustError) {
                if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
                    try FileSystem.makeDirectory(String(path[..<slash]), mode: 0o700)
                }
                try FileSystem.write(path, Array((generate() + "\n").utf8), mode: 0o600)
            } catch {
                throw .unreadable(file: path, reason: "cannot create: \(reason(error))")
            }
            created.append(path)
        }
        let admin = try read(adminPath)
        let readOnly = try read(readPath)
        guard admin != readOnly else {
            throw .invalid(file: readPath, reason: "holds the same token as \(adminPath): a read-only token must differ from the admin token")
        }
        return (AdminTokens(admin: admin, readOnly: readOnly), created)
    }

    private static func reason(_ error: TrustError) -> String {
        switch error {
        case .notFound: "no such file"
        case let .fetch(_, reason): reason
        case .tooLarge: "larger than 4 KiB; a token file holds one token"
        default: error.description
        }
    }
}

/// A token file that cannot be used; the agent does not start with one.
public enum AdminTokenError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case invalid(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "admin API token file \(file): \(reason)"
        case let .invalid(file, reason): "admin API token file \(file): \(reason)"
        }
    }
}

/// The check in front of every route of the group it is added to (`/api/v1`). Two credentials:
/// a bearer token (GET and HEAD need the read-only or the admin token, any other method the
/// admin token), or a request signed with a site admin key (`Authorization: OTAMesh-Sig …`,
/// ``SignedRequestGuard``), which grants the admin role on every gateway of the site. 401 (with
/// `WWW-Authenticate`) when the credential is missing, unknown or does not check out, with the
/// reason; 403 when a read-only token tries to change something. Credentials are never logged.
///
/// Each unknown token and each refused signature counts in `otamesh_admin_auth_failures_total`
/// and against the client's address (``AuthFailureLimiter``): a client that failed too often is
/// answered 429 with `Retry-After`, its credential not looked at, until it may try again
/// (`otamesh_admin_auth_limited_total`).
public struct AdminAuth<Context: RequestContext>: RouterMiddleware {
    let tokens: AdminTokens
    let signatures: SignedRequestGuard?
    let limiter: AuthLimiterBox

    public init(tokens: AdminTokens, signatures: SignedRequestGuard? = nil, limiter: AuthLimiterBox = AuthLimiterBox()) {
        self.tokens = tokens
        self.signatures = signatures
        self.limiter = limiter
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let client = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress ?? "unknown"
        if case let .limited(retryAfter) = limiter.decision(for: client) {
            limiter.limited.increment()
            context.logger.debug("admin API: 429 \(request.method) \(request.uri.path): too many failed credentials from \(client)")
            var response = Self.text(
                .tooManyRequests,
                "too many failed credentials from \(client): try again in \(retryAfter) s (the admin and read-only tokens are in the gateway's DATA/keys/)")
            response.headers[.retryAfter] = "\(retryAfter)"
            return response
        }
        let header = request.headers[.authorization]
        if let header, SignedRequest.isSigned(header) {
            let credentials: SignedRequest.Credentials
            do throws(SignedRequestError) {
                guard let signatures else { throw .noSiteTrust }
                credentials = try signatures.check(header, method: request.method.rawValue, target: request.head.path ?? request.uri.description)
            } catch {
                limiter.recordFailure(from: client, credential: "signature")
                context.logger.debug("admin API: 401 \(request.method) \(request.uri.path): signed request refused: \(error)")
                return Self.unauthorized("signed request refused: \(error)", scheme: SignedRequest.scheme)
            }
            var verified = request
            verified.body = SignedRequestGuard.verifyingBody(request.body, expected: credentials.bodySHA256)
            return try await next(verified, context)
        }
        let presented = header.flatMap(AdminTokens.bearerToken)
        guard let presented else {
            context.logger.debug("admin API: 401 \(request.method) \(request.uri.path): no credential")
            return Self.unauthorized(
                "missing bearer token or site admin signature: \(request.uri.path) needs a request signed with a site admin key (otamesh … --key FILE), "
                    + "or `Authorization: Bearer TOKEN` with the gateway's admin token (DATA/keys/admin.token), or its read-only token (DATA/keys/read.token) for GET"
            )
        }
        switch tokens.role(of: presented) {
        case nil:
            limiter.recordFailure(from: client, credential: "token")
            context.logger.debug("admin API: 401 \(request.method) \(request.uri.path): unknown bearer token from \(client)")
            return Self.unauthorized("unknown bearer token: it is neither this gateway's admin token nor its read-only token")
        case .readOnly? where !Self.isRead(request.method):
            context.logger.debug("admin API: 403 \(request.method) \(request.uri.path): read-only token")
            return Self.text(.forbidden, "read-only token: \(request.method) \(request.uri.path) needs the admin token (DATA/keys/admin.token)")
        case .admin?, .readOnly?:
            return try await next(request, context)
        }
    }

    /// GET and HEAD only read.
    static func isRead(_ method: HTTPRequest.Method) -> Bool { method == .get || method == .head }

    static func unauthorized(_ message: String, scheme: String = "Bearer") -> Response {
        var response = text(.unauthorized, message)
        response.headers[.wwwAuthenticate] = scheme
        return response
    }

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}

/// The admin API's failed-credential limiter, shared by every request (one per listener), with
/// its clock and its counters.
public final class AuthLimiterBox: Sendable {
    let state: NIOLockedValueBox<AuthFailureLimiter>
    let clock: @Sendable () -> Double
    let limited = Counter(label: "otamesh_admin_auth_limited_total")

    /// `clock`: seconds on a monotonic clock (default: the system's uptime clock).
    public init(
        _ limiter: AuthFailureLimiter = AuthFailureLimiter(),
        clock: @escaping @Sendable () -> Double = { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }
    ) {
        state = NIOLockedValueBox(limiter)
        self.clock = clock
        // Shown at 0 from the start, so a rate over them works before the first failure.
        for credential in ["token", "signature"] { _ = Self.failures(credential) }
    }

    static func failures(_ credential: String) -> Counter {
        Counter(label: "otamesh_admin_auth_failures_total", dimensions: [("credential", credential)])
    }

    func decision(for client: String) -> AuthFailureLimiter.Decision {
        let now = clock()
        return state.withLockedValue { $0.decision(for: client, now: now) }
    }

    /// Counts one failed credential (`token` or `signature`) from `client`.
    func recordFailure(from client: String, credential: String) {
        Self.failures(credential).increment()
        let now = clock()
        state.withLockedValue { $0.recordFailure(from: client, now: now) }
    }
}

/// The admin API's request context: Hummingbird's basic one, plus the client's address (the
/// failed-credential limit is kept per client).
public struct AdminRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
