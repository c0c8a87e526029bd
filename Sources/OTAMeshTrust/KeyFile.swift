import Crypto
import OTAMeshCommon
import _CryptoExtras

/// Private keys on disk as PEM, readable and writable by the openssl CLI:
/// Ed25519 as PKCS#8 (`openssl genpkey -algorithm ed25519`), ECDSA P-256 as PKCS#8 or SEC1
/// (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, `openssl ecparam -genkey`),
/// RSA as PKCS#8 or PKCS#1.
public enum KeyFile {
    /// The key types `release init --key-type` offers.
    public enum KeyType: String, Sendable, CaseIterable {
        case ed25519, ecdsa, rsa
    }

    /// PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
    static let ed25519Prefix: [UInt8] = [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]

    public static func generate(_ type: KeyType) throws -> TUFSigner {
        switch type {
        case .ed25519: .ed25519(Curve25519.Signing.PrivateKey())
        case .ecdsa: .ecdsaP256(P256.Signing.PrivateKey())
        case .rsa: .rsaPSS(try _RSA.Signing.PrivateKey(keySize: .bits3072))
        }
    }

    /// Parses a PEM private key of any supported type.
    public static func parse(pem: String, file: String) throws(TrustError) -> TUFSigner {
        if let der = derBody(pem, label: "PRIVATE KEY"), der.count == 48, Array(der.prefix(16)) == ed25519Prefix,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: der.suffix(32))
        {
            return .ed25519(key)
        }
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) { return .ecdsaP256(key) }
        if let key = try? _RSA.Signing.PrivateKey(pemRepresentation: pem) { return .rsaPSS(key) }
        throw .malformed(file: file, reason: "not an Ed25519, ECDSA P-256 or RSA private key in PEM")
    }

    /// PEM text for a private key.
    public static func pem(_ signer: TUFSigner) -> String {
        switch signer {
        case .ed25519(let key):
            return armor(ed25519Prefix + Array(key.rawRepresentation), label: "PRIVATE KEY")
        case .ecdsaP256(let key):
            return key.pemRepresentation + "\n"
        case .rsaPSS(let key):
            return key.pemRepresentation + "\n"
        }
    }

    static func derBody(_ pem: String, label: String) -> [UInt8]? {
        let lines = pem.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
        guard let start = lines.firstIndex(of: "-----BEGIN \(label)-----"),
            let end = lines.firstIndex(of: "-----END \(label)-----"), start < end
        else { return nil }
        return Base64.decode(lines[(start + 1)..<end].joined())
    }

    static func armor(_ der: [UInt8], label: String) -> String {
        let body = Base64.encode(der)
        var lines = ["-----BEGIN \(label)-----"]
        var index = body.startIndex
        while index < body.endIndex {
            let next = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<next]))
            index = next
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// RFC 4648 base64.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
            let value = (UInt32(chunk[0]) << 16) | (chunk.count > 1 ? UInt32(chunk[1]) << 8 : 0) | (chunk.count > 2 ? UInt32(chunk[2]) : 0)
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[Int((value >> (18 - 6 * UInt32(position))) & 0x3F)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var lookup = [UInt8: UInt32]()
        for (index, c) in alphabet.enumerated() { lookup[c] = UInt32(index) }
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for c in text.utf8 where c != UInt8(ascii: "=") {
            guard let value = lookup[c] else { return nil }
            buffer = buffer << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((buffer >> UInt32(bits)) & 0xFF))
            }
        }
        return out
    }
}
