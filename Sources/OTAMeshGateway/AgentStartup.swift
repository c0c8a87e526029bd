import Foundation
import Logging
import NIOCore
import NIOSSL
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshStore
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// Everything the agent loads from disk before it opens a socket. Each step that can fail
/// (store, tokens, trust root, site keyring, site trust, site CA, device registry) fails here,
/// while nothing asynchronous runs yet, so a bad file ends the start with its one-line reason
/// and nothing to tear down.
struct AgentStartup {
    let store: BlobStore
    let tokens: AdminTokens
    let tokensCreated: [String]
    let tufDirectory: String
    let registry: DeviceRegistry
    let catalog: ServingCatalog
    /// The HTTPS context for device.tlsListen, nil when HTTPS is off or no certificate exists yet.
    let tlsContext: NIOSSLContext?
    /// The admin API's TLS configuration, nil when it is served in clear text
    /// (``AgentConfiguration/adminTransport(hasCertificate:certificatePath:)``).
    let adminTLS: TLSConfiguration?
    /// The gossip keyring (nil with gossip off) and whether it is new: a new one is written only
    /// once every listener is bound.
    let keyring: SiteKeyringFile?
    let keyringIsNew: Bool
    /// The site trust rollouts are checked against; nil with gossip off or no file (`trustMissing`).
    let siteTrust: SiteTrust?
    /// Whether the data directory holds a trusted TUF root (no root: no rollouts, no peer metadata).
    let hasTrustRoot: Bool
    /// The site's DDI GatewayToken (`ddi.gatewayTokenFile`), if configured.
    var ddiGatewayToken: String?

    static func load(_ configuration: AgentConfiguration, logger: Logger, clock: WallClock) throws -> AgentStartup {
        // First, before anything is created: an admin listener that would expose its tokens is refused.
        let siteCA = SiteCA(keysDirectory: "\(configuration.dataDirectory)/keys")
        let adminTLS = try loadAdminTLS(configuration, siteCA: siteCA, logger: logger)
        let allowOpen = configuration.insecurePermissions
        let store = try BlobStore(
            configuration: StoreConfiguration(
                directory: configuration.dataDirectory, quotaBytes: configuration.cacheQuotaBytes,
                partialMaxAge: configuration.partialMaxAge),
            logger: logger, clock: clock)
        for path in [configuration.adminTokenPath, configuration.adminReadTokenPath] { try PrivateFile.check(path, allowOpen: allowOpen) }
        let (tokens, tokensCreated) = try AdminTokens.loadOrCreate(admin: configuration.adminTokenPath, readOnly: configuration.adminReadTokenPath)
        let tuf = "\(configuration.dataDirectory)/tuf"
        try Agent.installTrustRoot(configuration.trustRoot, tufDirectory: tuf)
        Agent.keepVersionedRoot(tufDirectory: tuf)
        let hasTrustRoot = DirectoryPersistence(directory: tuf).load("root.json") != nil
        if configuration.upstreamMetadataURL != nil, !hasTrustRoot {
            throw TrustError.notLoaded(role: Role.root, needs: "a trusted root: set trust.root (--trust-root FILE)")
        }
        let registry = try DeviceRegistry(path: "\(configuration.dataDirectory)/devices.sqlite")
        registry.unknownLimits = configuration.unknownDeviceLimits
        let catalog = try ServingCatalog.load(store: store, tufDirectory: tuf)
        let tlsContext =
            configuration.deviceTLSListen == nil
            ? nil : try siteCA.serverContext()
        var keyring: SiteKeyringFile?
        var keyringIsNew = false
        var siteTrust: SiteTrust?
        if configuration.gossipListen != nil {
            (keyring, keyringIsNew) = try loadKeyring(configuration)
            siteTrust = try loadSiteTrust(configuration.siteTrustPath)
        }
        var startup = AgentStartup(
            store: store, tokens: tokens, tokensCreated: tokensCreated, tufDirectory: tuf, registry: registry, catalog: catalog,
            tlsContext: tlsContext, adminTLS: adminTLS, keyring: keyring, keyringIsNew: keyringIsNew, siteTrust: siteTrust, hasTrustRoot: hasTrustRoot)
        if let path = configuration.ddi.gatewayTokenFile {
            try PrivateFile.check(path, allowOpen: allowOpen)
            let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard !text.isEmpty, text.count <= 256 else {
                throw ConfigurationError.invalid(
                    source: "ddi.gatewayTokenFile", key: "ddi.gatewayTokenFile", reason: "\(path) holds no token (one line, at most 256 characters)")
            }
            startup.ddiGatewayToken = text
        }
        return startup
    }

    /// The admin API's TLS configuration when it is to speak HTTPS; throws ``AdminListenRefused``
    /// when the configuration asks for clear text off loopback without forcing it, or for HTTPS
    /// without a certificate. Warns when the certificate does not name the address listened on
    /// (clients that connect to that address would refuse it).
    static func loadAdminTLS(_ configuration: AgentConfiguration, siteCA: SiteCA, logger: Logger) throws -> TLSConfiguration? {
        let transport = try configuration.adminTransport(hasCertificate: siteCA.hasGatewayCertificate, certificatePath: siteCA.gatewayCertPath)
        if transport == .clearText, !AgentConfiguration.isLoopback(configuration.adminListen.host) {
            logger.warning(
                "admin API in clear text on a non-loopback address (admin.insecureClearText): its tokens cross the network readable",
                metadata: ["admin.listen": "\(configuration.adminListen)"])
        }
        guard transport == .tls else { return nil }
        let host = configuration.adminListen.host
        let anyAddress = host == "0.0.0.0" || host == "::"
        if !anyAddress, siteCA.gatewayCertificateCovers(host) == false {
            logger.warning(
                "the gateway certificate does not name the admin address: clients that connect to it will refuse the certificate (otamesh keys site-ca --address \(host) … reissues it)",
                metadata: ["admin.listen": "\(configuration.adminListen)", "admin.certificate": "\(siteCA.gatewayCertPath)"])
        }
        return try siteCA.serverConfiguration()
    }

    /// The site keyring, or a new site's (in memory; saved once the listeners are bound). A
    /// gateway told to join others never founds a site of its own: without the site's keyring
    /// its packets could not be read by them, nor theirs by it.
    static func loadKeyring(_ configuration: AgentConfiguration) throws -> (SiteKeyringFile, Bool) {
        let path = configuration.siteKeyringPath
        if access(path, F_OK) == 0 {
            try PrivateFile.check(path, allowOpen: configuration.insecurePermissions)
            return (try SiteKeyringFile.load(path), false)
        }
        guard configuration.gossipJoin.isEmpty else { throw StartupError.noKeyringToJoin(path: path, join: configuration.gossipJoin) }
        return (SiteKeyringFile.generate(site: "site-\(UInt32.random(in: .min ... .max))"), true)
    }

    /// The site trust file, if there is one; a file that exists but cannot be used stops the start.
    static func loadSiteTrust(_ path: String) throws -> SiteTrust? {
        guard access(path, F_OK) == 0 else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrustError.fetch(file: path, reason: "cannot read the site trust file: \(String(cString: strerror(errno)))")
        }
        guard data.count <= 1 << 20 else { throw TrustError.malformed(file: path, reason: "larger than 1 MiB") }
        return try SiteTrust(bytes: [UInt8](data), file: path)
    }
}

/// Why the agent does not start, beyond a file's own error.
public enum StartupError: Error, Sendable, Equatable, CustomStringConvertible {
    case noKeyringToJoin(path: String, join: [String])

    public var description: String {
        switch self {
        case let .noKeyringToJoin(path, join):
            "no site keyring at \(path), so this gateway could not talk to \(join.joined(separator: ", ")): copy the site's keyring "
                + "from a gateway of the site (its DATA/keys/site.keyring, or the file `otamesh keys site-keyring --out FILE` made) "
                + "to \(path), or point --site-keyring at it"
        }
    }
}
