import Crypto
import OTAMeshCommon

/// An admin API request signed with a site admin key (docs/protocol.md, "Signed admin API
/// requests"): any gateway that trusts the key accepts it, so an admin needs no per-gateway
/// token. The header is
///
///     Authorization: OTAMesh-Sig keyid=HEX, time=UNIX, nonce=WORD, body=SHA256HEX, sig=HEX
///
/// and the signature (the key's own scheme, as for signed commands) covers ``message(method:target:time:nonce:bodySHA256:)``:
/// the method, the request target (path and query, as sent), the time, the nonce and the
/// SHA-256 of the body, one per line. Pure: the caller supplies the time and the site trust.
public enum SignedRequest {
    public static let scheme = "OTAMesh-Sig"
    /// How far a request's time may be from the gateway's clock, either way (seconds).
    public static let maxSkew: Int64 = 300
    /// SHA-256 of no bytes, the body hash of a request without a body.
    public static let emptyBodySHA256 = hexString(SHA256.hash(data: [UInt8]()))

    /// The parts of an `OTAMesh-Sig` header.
    public struct Credentials: Sendable, Equatable {
        public var keyID: String
        public var time: Int64
        public var nonce: String
        /// Lower-case hex SHA-256 of the body the client sent.
        public var bodySHA256: String
        public var signature: [UInt8]

        public init(keyID: String, time: Int64, nonce: String, bodySHA256: String, signature: [UInt8]) {
            self.keyID = keyID
            self.time = time
            self.nonce = nonce
            self.bodySHA256 = bodySHA256
            self.signature = signature
        }

        /// The header value.
        public var header: String {
            "\(SignedRequest.scheme) keyid=\(keyID), time=\(time), nonce=\(nonce), body=\(bodySHA256), sig=\(hexString(signature))"
        }
    }

    /// The bytes signed: a fixed first line, then method, target, time, nonce and body hash.
    public static func message(method: String, target: String, time: Int64, nonce: String, bodySHA256: String) -> [UInt8] {
        Array("otamesh-admin-request/1\n\(method.uppercased())\n\(target)\n\(time)\n\(nonce)\n\(bodySHA256)".utf8)
    }

    /// Signs a request: `target` is the path and query exactly as they go on the wire
    /// (`/api/v1/devices?site=1`).
    public static func sign(
        with signer: TUFSigner, method: String, target: String, body: [UInt8], time: Int64,
        nonce: String
    ) throws -> Credentials {
        let bodySHA256 = hexString(SHA256.hash(data: body))
        let signature = try signer.sign(message(method: method, target: target, time: time, nonce: nonce, bodySHA256: bodySHA256))
        return Credentials(keyID: signer.publicKey.computedKeyID, time: time, nonce: nonce, bodySHA256: bodySHA256, signature: signature)
    }

    /// A fresh nonce: 12 random bytes as hex.
    public static func nonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return hexString((0..<12).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// Whether an `Authorization` header uses this scheme (then ``parse(_:)`` says what is wrong with it).
    public static func isSigned(_ header: String) -> Bool {
        let text = trimmed(header)
        return text.count > scheme.count && text.prefix(scheme.count + 1).lowercased() == scheme.lowercased() + " "
    }

    static func trimmed(_ text: String) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(text.drop(while: blank).reversed().drop(while: blank).reversed())
    }

    /// The credentials of an `OTAMesh-Sig` header; each field once, bounded, well formed.
    public static func parse(_ header: String) throws(SignedRequestError) -> Credentials {
        guard header.utf8.count <= 4096 else { throw .malformed("the header is longer than 4096 bytes") }
        guard isSigned(header) else { throw .malformed("not an \(scheme) header") }
        let text = trimmed(header)
        var fields: [String: String] = [:]
        for part in text.dropFirst(scheme.count + 1).split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { trimmed(String($0)) }
            guard pair.count == 2, !pair[0].isEmpty else { throw .malformed("each field is NAME=VALUE, separated by commas") }
            let name = pair[0].lowercased()
            guard fields[name] == nil else { throw .malformed("\(name) given twice") }
            fields[name] = pair[1]
        }
        func hex(_ name: String, bytes: ClosedRange<Int>) throws(SignedRequestError) -> String {
            guard let value = fields[name] else { throw .malformed("no \(name)=") }
            guard let decoded = Hex.decode(value), bytes.contains(decoded.count) else {
                throw .malformed(
                    "\(name)= needs \(bytes.lowerBound == bytes.upperBound ? "\(bytes.lowerBound)" : "\(bytes.lowerBound)…\(bytes.upperBound)") bytes of hex")
            }
            return value.lowercased()
        }
        let keyID = try hex("keyid", bytes: 32...32)
        let body = try hex("body", bytes: 32...32)
        let signature = Hex.decode(try hex("sig", bytes: 16...1024)) ?? []
        guard let timeText = fields["time"], let time = Int64(timeText), time >= 0 else { throw .malformed("time= needs Unix seconds") }
        guard let nonce = fields["nonce"], (8...64).contains(nonce.utf8.count),
            nonce.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D || $0 == 0x5F })
        else { throw .malformed("nonce= needs 8…64 letters, digits, - or _") }
        return Credentials(keyID: keyID, time: time, nonce: nonce, bodySHA256: body, signature: signature)
    }

    /// Checks credentials for a request (method and target as received) against the site trust
    /// at `now`: the key must be one of the site's admin keys, the time within ``maxSkew``, the
    /// signature valid. The body hash is checked separately, against the bytes as they arrive.
    /// Returns the admin key that signed.
    @discardableResult
    public static func verify(_ credentials: Credentials, method: String, target: String, trust: SiteTrust, now: Int64) throws(SignedRequestError) -> TUFKey {
        guard let key = trust.admins[credentials.keyID] else {
            throw .unknownKey(keyID: credentials.keyID, site: trust.site)
        }
        let skew = credentials.time.subtractingReportingOverflow(now)
        guard !skew.overflow, abs(skew.partialValue) <= maxSkew else {
            throw .stale(time: credentials.time, now: now)
        }
        let signed = message(method: method, target: target, time: credentials.time, nonce: credentials.nonce, bodySHA256: credentials.bodySHA256)
        guard key.verify(signature: credentials.signature, message: signed) else {
            throw .badSignature(keyID: credentials.keyID)
        }
        return key
    }
}

/// Why a signed admin API request was refused; each says what to do about it.
public enum SignedRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case noSiteTrust
    case unknownKey(keyID: String, site: String)
    case stale(time: Int64, now: Int64)
    case badSignature(keyID: String)
    case replayed
    case bodyMismatch

    public var description: String {
        switch self {
        case .malformed(let why): "malformed \(SignedRequest.scheme) header: \(why)"
        case .noSiteTrust:
            "this gateway has loaded no site trust (it needs gossip on and a site trust file), so it accepts no signed requests: use its token, or give it the site trust and restart it"
        case let .unknownKey(keyID, site): "key \(keyID.prefix(16))… is not an admin key of site \(site)"
        case let .stale(time, now):
            "signed at \(time), \(time < now ? "\(now - time) s ago" : "\(time - now) s ahead"): more than \(SignedRequest.maxSkew) s off this gateway's clock (check both clocks)"
        case .badSignature(let keyID): "the signature by key \(keyID.prefix(16))… does not match this request (method, path, time, nonce, body hash)"
        case .replayed: "this exact signed request was already used (a replay): sign each request anew"
        case .bodyMismatch: "the body is not the one signed (its SHA-256 differs from body=)"
        }
    }
}
