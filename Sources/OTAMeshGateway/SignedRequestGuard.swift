import Crypto
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import OTAMeshCommon
import OTAMeshFirmware
import OTAMeshTrust

/// The gateway's check of `Authorization: OTAMesh-Sig …` admin API requests
/// (``SignedRequest``): against the site trust this agent loaded, within ±5 minutes of its
/// clock, each (key, nonce) accepted once. A valid site admin signature grants the admin role
/// on any gateway of the site, so an admin needs no per-gateway token.
public final class SignedRequestGuard: Sendable {
    /// The site trust in force (nil while none is loaded: signed requests are refused).
    let trust: @Sendable () -> SiteTrust?
    /// Unix seconds.
    let clock: @Sendable () -> Int64
    /// (key id, nonce) of accepted requests → their signed time, kept for the replay window.
    let seen = NIOLockedValueBox<[String: Int64]>([:])
    /// Accepted requests remembered at most; beyond that the oldest are forgotten first (only
    /// requests with a valid admin signature are remembered, so only an admin can fill it).
    static let maxRemembered = 20_000

    public init(trust: @escaping @Sendable () -> SiteTrust?, clock: @escaping @Sendable () -> Int64) {
        self.trust = trust
        self.clock = clock
    }

    /// The credentials of a request whose signature, key and time are good; the body is checked
    /// as it is read (``verifyingBody(_:expected:)``).
    public func check(_ header: String, method: String, target: String) throws(SignedRequestError) -> SignedRequest.Credentials {
        let credentials = try SignedRequest.parse(header)
        guard let trust = trust() else { throw .noSiteTrust }
        let now = clock()
        try SignedRequest.verify(credentials, method: method, target: target, trust: trust, now: now)
        let fresh = seen.withLockedValue { seen -> Bool in
            let key = "\(credentials.keyID) \(credentials.nonce)"
            guard seen[key] == nil else { return false }
            if seen.count >= 256 { seen = seen.filter { abs($0.value.subtractingReportingOverflow(now).partialValue) <= SignedRequest.maxSkew } }
            if seen.count >= Self.maxRemembered, let oldest = seen.min(by: { $0.value < $1.value }) { seen[oldest.key] = nil }
            seen[key] = credentials.time
            return true
        }
        guard fresh else { throw .replayed }
        return credentials
    }

    /// `body` passed through unchanged, except that its end fails with 401 when the bytes'
    /// SHA-256 is not `expected` (the hash the signature covers). A handler that reads the body
    /// therefore never acts on bytes other than those signed.
    public static func verifyingBody(_ body: RequestBody, expected: String) -> RequestBody {
        RequestBody(asyncSequence: VerifiedBody(base: body, expected: expected))
    }
}

/// A request body that checks its SHA-256 once it has been read to the end.
struct VerifiedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let expected: String

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let expected: String
        var hasher = SHA256()
        var finished = false

        mutating func next() async throws -> ByteBuffer? {
            guard !finished else { return nil }
            if let chunk = try await base.next() {
                hasher.update(data: chunk.readableBytesView)
                return chunk
            }
            finished = true
            guard hexString(hasher.finalize()) == expected else {
                throw HTTPError(.unauthorized, message: "signed request refused: \(SignedRequestError.bodyMismatch)")
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), expected: expected)
    }
}
