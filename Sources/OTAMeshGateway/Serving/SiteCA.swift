import Crypto
import Foundation
import NIOSSL
import OTAMeshTrust
import SwiftASN1
import X509

/// The site's certificate authority and this gateway's certificate, kept in the data
/// directory's `keys/` (private keys mode 0600):
///
/// - `site-ca.key`, `site-ca.pem`: the CA (ECDSA P-256, 10 years, path length 0);
/// - `gateway.key`, `gateway.pem`: this gateway's server certificate (P-256, 2 years) for its
///   names and addresses, signed by the CA.
///
/// Devices pin `site-ca.pem` (esp_https_ota's `cert_pem`, WiPhone's `/user.pem`).
public struct SiteCA: Sendable {
    public let keysDirectory: String

    public init(keysDirectory: String) {
        self.keysDirectory = keysDirectory
    }

    public var caKeyPath: String { "\(keysDirectory)/site-ca.key" }
    public var caCertPath: String { "\(keysDirectory)/site-ca.pem" }
    public var gatewayKeyPath: String { "\(keysDirectory)/gateway.key" }
    public var gatewayCertPath: String { "\(keysDirectory)/gateway.pem" }

    public struct Failure: Error, CustomStringConvertible {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// What ``ensure(names:addresses:now:)`` did.
    public struct Report: Sendable {
        public var createdCA: Bool
        public var names: [String]
        public var addresses: [String]
        public var notAfter: Date
    }

    /// Creates the CA if there is none, then (re)issues this gateway's certificate for
    /// `names` (DNS) and `addresses` (IPv4/IPv6 literals).
    public func ensure(names: [String], addresses: [String], now: Date = Date()) throws -> Report {
        try FileSystem.makeDirectory(keysDirectory, mode: 0o700)
        var createdCA = false
        let caKey: P256.Signing.PrivateKey
        let caCert: Certificate
        if FileManager.default.fileExists(atPath: caKeyPath) {
            caKey = try loadKey(caKeyPath)
            caCert = try loadCertificate(caCertPath)
        } else {
            caKey = P256.Signing.PrivateKey()
            let name = try DistinguishedName {
                OrganizationName("otamesh site")
                CommonName("otamesh site CA")
            }
            caCert = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
                issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                    SubjectKeyIdentifier(hash: .init(caKey.publicKey))
                },
                issuerPrivateKey: .init(caKey))
            try write(caKey.pemRepresentation, to: caKeyPath, mode: 0o600)
            try write(try caCert.serializeAsPEM().pemString + "\n", to: caCertPath, mode: 0o644)
            createdCA = true
        }
        var alternatives: [GeneralName] = names.map { .dnsName($0) }
        for address in addresses {
            guard let bytes = Self.ipBytes(address) else {
                throw Failure(file: gatewayCertPath, reason: "\(address) is not an IPv4 or IPv6 address")
            }
            alternatives.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let key = P256.Signing.PrivateKey()
        let notAfter = now.addingTimeInterval(730 * 86_400)
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: notAfter,
            issuer: caCert.subject, subject: try DistinguishedName { CommonName(names.first ?? addresses.first ?? "otamesh gateway") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(alternatives)
            },
            issuerPrivateKey: .init(caKey))
        try write(key.pemRepresentation, to: gatewayKeyPath, mode: 0o600)
        try write(try leaf.serializeAsPEM().pemString + "\n", to: gatewayCertPath, mode: 0o644)
        return Report(createdCA: createdCA, names: names, addresses: addresses, notAfter: notAfter)
    }

    /// The CA certificate in PEM, for devices.
    public func exportPEM() throws -> String {
        guard let data = FileManager.default.contents(atPath: caCertPath) else {
            throw Failure(file: caCertPath, reason: "no site CA yet: run otamesh keys site-ca")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Whether this gateway has a certificate from the site CA (`otamesh keys site-ca` ran).
    public var hasGatewayCertificate: Bool {
        FileManager.default.fileExists(atPath: gatewayCertPath) && FileManager.default.fileExists(atPath: gatewayKeyPath)
    }

    /// The TLS server context for :8443, or nil when this gateway has no certificate yet.
    public func serverContext() throws -> NIOSSLContext? {
        guard let configuration = try serverConfiguration() else { return nil }
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw Failure(file: gatewayCertPath, reason: "cannot load the gateway certificate: \(error)")
        }
    }

    /// The TLS server configuration with this gateway's certificate (and the CA's, so a client
    /// gets the chain), TLS 1.2 at least; nil when this gateway has no certificate yet.
    public func serverConfiguration() throws -> TLSConfiguration? {
        guard hasGatewayCertificate else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(gatewayCertPath) + NIOSSLCertificate.fromPEMFile(caCertPath)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: gatewayKeyPath, format: .pem)))
            configuration.minimumTLSVersion = .tlsv12
            // Fail here, at start, rather than on the first connection.
            _ = try NIOSSLContext(configuration: configuration)
            return configuration
        } catch {
            throw Failure(file: gatewayCertPath, reason: "cannot load the gateway certificate: \(error)")
        }
    }

    /// The IP addresses and DNS names the gateway certificate is issued for (its subject
    /// alternative names), IP addresses in their usual text form.
    public func gatewayNames() throws -> (addresses: [String], names: [String]) {
        let certificate = try loadCertificate(gatewayCertPath)
        var addresses: [String] = []
        var names: [String] = []
        guard let alternatives = try? certificate.extensions.subjectAlternativeNames else { return ([], []) }
        for name in alternatives {
            switch name {
            case let .dnsName(dns): names.append(dns)
            case let .ipAddress(octets): if let text = Self.ipText(Array(octets.bytes)) { addresses.append(text) }
            default: break
            }
        }
        return (addresses, names)
    }

    /// Whether the gateway certificate names `host` (an IP literal compared as an address, a
    /// name case-insensitively); nil when the certificate cannot be read.
    public func gatewayCertificateCovers(_ host: String) -> Bool? {
        guard let (addresses, names) = try? gatewayNames() else { return nil }
        if let bytes = Self.ipBytes(host) { return addresses.contains { Self.ipBytes($0) == bytes } }
        return names.contains { $0.lowercased() == host.lowercased() }
    }

    func loadKey(_ path: String) throws -> P256.Signing.PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(file: path, reason: "cannot read") }
        do { return try P256.Signing.PrivateKey(pemRepresentation: String(decoding: data, as: UTF8.self)) } catch {
            throw Failure(file: path, reason: "not a P-256 private key in PEM: \(error)")
        }
    }

    func loadCertificate(_ path: String) throws -> Certificate {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(file: path, reason: "cannot read") }
        do { return try Certificate(pemEncoded: String(decoding: data, as: UTF8.self)) } catch {
            throw Failure(file: path, reason: "not a certificate in PEM: \(error)")
        }
    }

    func write(_ text: String, to path: String, mode: mode_t) throws {
        do { try FileSystem.write(path, Array(text.utf8), mode: mode) } catch {
            throw Failure(file: path, reason: "cannot write: \(error)")
        }
    }

    /// The text form of 4 or 16 address bytes.
    static func ipText(_ bytes: [UInt8]) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : bytes.count == 16 ? AF_INET6 : -1
        guard family != -1 else { return nil }
        let text: String? = bytes.withUnsafeBytes { raw in
            guard inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil else { return nil }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text
    }

    /// Whether `text` is an IPv4 or IPv6 address literal.
    public static func isIPAddress(_ text: String) -> Bool { ipBytes(text) != nil }

    /// The 4 or 16 bytes of an IP literal.
    /// The /64 prefix of an IPv6 address's 16 bytes, as `fd00:1:2:3::/64` (every group written).
    static func slash64(_ bytes: [UInt8]) -> String {
        stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

    static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
