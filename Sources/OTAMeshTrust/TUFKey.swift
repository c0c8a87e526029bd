import Crypto
import OTAMeshCommon
import _CryptoExtras

/// A public key as TUF metadata lists it: `{"keytype", "scheme", "keyval": {"public"}}`.
///
/// Supported: `ed25519`/`ed25519` (hex raw key), `ecdsa`|`ecdsa-sha2-nistp256`/`ecdsa-sha2-nistp256`
/// (PEM SubjectPublicKeyInfo, DER signatures), `rsa`/`rsassa-pss-sha256` (PEM, PSS with MGF1-SHA256
/// and a 32-byte salt) and `rsa`/`rsa-pkcs1v15-sha256`. Signatures are hex in metadata.
public struct TUFKey: Sendable, Hashable {
    public let keyType: String
    public let scheme: String
    public let publicValue: String
    /// The key's JSON as found (key ids hash this).
    public let json: JSONValue

    /// Parses a key object; unknown key types are kept (they can never verify a signature).
    public init(json: JSONValue, context: String) throws(TrustError) {
        guard let keyType = json["keytype"]?.stringValue, let scheme = json["scheme"]?.stringValue,
            let publicValue = json["keyval"]?["public"]?.stringValue
        else { throw .malformed(file: context, reason: "key needs string keytype, scheme and keyval.public") }
        self.keyType = keyType
        self.scheme = scheme
        self.publicValue = publicValue
        self.json = json
    }

    public init(keyType: String, scheme: String, publicValue: String) {
        self.keyType = keyType
        self.scheme = scheme
        self.publicValue = publicValue
        self.json = .object(
            [
                "keytype": .string(keyType), "scheme": .string(scheme),
                "keyval": .object(["public": .string(publicValue)]) as JSONValue,
            ] as KeyValuePairs<String, JSONValue>)
    }

    /// SHA-256 of the canonical JSON of the key object: the key id securesystemslib assigns.
    public var computedKeyID: String { hexString(SHA256.hash(data: json.canonicalBytes)) }

    /// The key material, for telling two key ids of one key apart (a threshold counts keys, not ids).
    var identity: String { "\(keyType)|\(scheme)|\(publicValue)" }

    /// True when `signature` is this key's valid signature over `message`.
    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        switch (keyType, scheme) {
        case ("ed25519", "ed25519"):
            guard let raw = Hex.decode(publicValue), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
            return key.isValidSignature(signature, for: message)
        case ("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"):
            guard let key = try? P256.Signing.PublicKey(pemRepresentation: publicValue),
                let sig = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(sig, for: message)
        case ("rsa", "rsassa-pss-sha256"):
            guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: publicValue) else { return false }
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: message, padding: .PSS)
        case ("rsa", "rsa-pkcs1v15-sha256"):
            guard let key = try? _RSA.Signing.PublicKey(pemRepresentation: publicValue) else { return false }
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: message, padding: .insecurePKCS1v1_5)
        default:
            return false
        }
    }
}

/// A private key that signs metadata (repository side, site admin keys, tests).
public enum TUFSigner: Sendable {
    case ed25519(Curve25519.Signing.PrivateKey)
    case ecdsaP256(P256.Signing.PrivateKey)
    case rsaPSS(_RSA.Signing.PrivateKey)

    /// The public half as TUF lists it.
    public var publicKey: TUFKey {
        switch self {
        case .ed25519(let key):
            TUFKey(keyType: "ed25519", scheme: "ed25519", publicValue: hexString(key.publicKey.rawRepresentation))
        case .ecdsaP256(let key):
            TUFKey(keyType: "ecdsa", scheme: "ecdsa-sha2-nistp256", publicValue: key.publicKey.pemRepresentation + "\n")
        case .rsaPSS(let key):
            TUFKey(keyType: "rsa", scheme: "rsassa-pss-sha256", publicValue: key.publicKey.pemRepresentation + "\n")
        }
    }

    /// Signs `message`; the bytes go into metadata as hex.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        switch self {
        case .ed25519(let key): Array(try key.signature(for: message))
        case .ecdsaP256(let key): Array(try key.signature(for: message).derRepresentation)
        case .rsaPSS(let key): Array(try key.signature(for: message, padding: .PSS).rawRepresentation)
        }
    }
}

/// Hex decoding for signatures and raw keys.
public enum Hex {
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}
