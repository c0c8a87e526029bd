/// `admin.tls`: whether the admin API speaks HTTPS.
public enum AdminTLSMode: String, Sendable, Equatable, CaseIterable {
    /// HTTPS when `admin.listen` is not a loopback address, clear text on loopback.
    case auto
    /// Always HTTPS (on loopback too); the start is refused without a gateway certificate.
    case on
    /// Never HTTPS; on a non-loopback address only with `admin.insecureClearText`.
    case off
}

/// How the admin API is served.
public enum AdminTransport: Sendable, Equatable {
    case clearText
    case tls
}

/// The admin listener the configuration asks for cannot be served safely: the agent does not
/// start (exit 2), and the reason names the fixes.
public struct AdminListenRefused: Error, Sendable, Equatable, CustomStringConvertible {
    public let listen: ListenAddress
    public let reason: String
    public var description: String { "admin.listen \(listen): \(reason)" }
}

extension AgentConfiguration {
    /// Whether the admin API is served in clear text or over HTTPS, given whether this gateway
    /// holds a certificate from the site CA. Off loopback the bearer tokens would cross the
    /// network, so clear text there needs `admin.insecureClearText`; `admin.tls: on` needs the
    /// certificate wherever it listens. Pure.
    public func adminTransport(hasCertificate: Bool, certificatePath: String = "DATA/keys/gateway.pem") throws(AdminListenRefused) -> AdminTransport {
        let loopback = Self.isLoopback(adminListen.host)
        let issue = "run `otamesh keys site-ca --address IP` (with this gateway's LAN addresses) to have the site CA issue it one"
        switch adminTLS {
        case .on:
            guard hasCertificate else {
                throw AdminListenRefused(
                    listen: adminListen, reason: "admin.tls is on but this gateway has no certificate from the site CA at \(certificatePath): \(issue)")
            }
            return .tls
        case .off:
            guard loopback || adminInsecureClearText else {
                throw AdminListenRefused(
                    listen: adminListen,
                    reason: "not a loopback address, and admin.tls is off: the admin tokens would cross the network in clear text; "
                        + "set admin.tls to auto or on (HTTPS with the site CA), or listen on 127.0.0.1, "
                        + "or force clear text with admin.insecureClearText: true (--admin-insecure-clear-text)")
            }
            return .clearText
        case .auto:
            if loopback { return .clearText }
            if hasCertificate { return .tls }
            guard adminInsecureClearText else {
                throw AdminListenRefused(
                    listen: adminListen,
                    reason: "not a loopback address, so the admin API needs HTTPS, and this gateway has no certificate from the site CA at \(certificatePath): "
                        + "\(issue), or listen on 127.0.0.1, or force clear text with admin.insecureClearText: true (--admin-insecure-clear-text)")
            }
            return .clearText
        }
    }

    /// Whether a listen host reaches this machine only: `localhost`, 127.0.0.0/8, `::1` (also
    /// IPv4-mapped). Any other name, and the all-interfaces addresses, are not.
    public static func isLoopback(_ host: String) -> Bool {
        let lowered = host.lowercased()
        if lowered == "localhost" || lowered == "localhost." { return true }
        guard let bytes = SiteCA.ipBytes(host) else { return false }
        if bytes.count == 4 { return bytes[0] == 127 }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) { return bytes[15] == 1 }
        let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
        return mapped && bytes[12] == 127
    }

    /// The scheme the admin API answers with under this configuration, for CLI commands that
    /// have no `DATA/admin.url` to go by (a certificate is assumed where HTTPS is asked for).
    public var adminScheme: String {
        switch adminTLS {
        case .on: "https"
        case .off: "http"
        case .auto: Self.isLoopback(adminListen.host) ? "http" : "https"
        }
    }
}
