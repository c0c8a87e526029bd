import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import OTAMeshGateway
import OTAMeshTransfer
import OTAMeshTrust
import Synchronization

#if canImport(Glibc)
import Glibc
import OTAMeshCommon
#endif

/// Options of every command that talks to a gateway's admin API: where it is, and which
/// credential the CLI presents. A token is never a command-line value (it would show in `ps` and
/// shell history). See ``AdminCredentialLookup`` for the order; the address is `--admin URL`,
/// else the URL the agent of the data directory wrote to `DATA/admin.url` when it started, else
/// `admin.listen` of the configuration (all interfaces → loopback), else http://127.0.0.1:8071.
struct AdminOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The gateway's admin API URL.",
            discussion:
                "Default: DATA/admin.url (written by a running agent of --data-dir / --config), else admin.listen of the configuration, else http://127.0.0.1:8071."
        ))
    var admin: String?

    @Option(
        help: ArgumentHelp(
            "File holding the admin API bearer token.",
            discussion:
                "Default: $OTAMESH_TOKEN, else DATA/keys/admin.token, else DATA/keys/read.token (admin.tokenFile / admin.readTokenFile when configured); "
                + "without a token, a site admin key signs each request (--key FILE, $OTAMESH_ADMIN_KEY, $OTAMESH_ADMIN_KEY_FILE)."))
    var tokenFile: String?

    @Option(
        help: ArgumentHelp(
            "Site CA certificate (PEM) an https:// admin API is verified against.",
            discussion:
                "Default: $OTAMESH_ADMIN_CA, else DATA/keys/site-ca.pem. On another machine: `otamesh keys site-ca --export-pem > site-ca.pem` on the gateway.")
    )
    var ca: String?

    @OptionGroup var config: ConfigOptions

    /// The admin API URL as described above (reads, never creates, the data directory).
    func address() throws -> String {
        if let admin { return admin }
        return AdminAddress.resolve(try config.load())
    }

    /// How the CLI reaches `url`: plain HTTP, or HTTPS verified against the site CA that
    /// ``AdminCALookup`` finds.
    func transport(for url: String) throws -> AdminTransportClient {
        guard AdminCALookup.isHTTPS(url) else { return .plain }
        let path = try AdminCALookup.resolve(ca: ca, environment: ProcessInfo.processInfo.environment, url: url) {
            "\(try config.load().dataDirectory)/keys/site-ca.pem"
        }
        return try AdminTransportClient.verifying(caFile: path)
    }

    /// The client with the credential ``AdminCredentialLookup`` finds; `key` is a `--key FILE`
    /// given to the command (a site admin private key).
    func client(key: String? = nil) throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        let credential = try AdminCredentialLookup.resolve(tokenFile: tokenFile, keyFile: key, environment: environment) {
            let configuration = try config.load()
            return [configuration.adminTokenPath, configuration.adminReadTokenPath]
        }
        let url = try address()
        return AdminClient(admin: url, credential: credential.credential, transport: try transport(for: url))
    }
}

/// Which site CA certificate the CLI verifies an https:// admin API against: `--ca FILE`, else
/// `$OTAMESH_ADMIN_CA`, else the data directory's `keys/site-ca.pem` when it exists. Without one
/// the CLI refuses to talk HTTPS (it never falls back to the system's trust store, nor to no
/// verification).
enum AdminCALookup {
    static func isHTTPS(_ url: String) -> Bool { url.lowercased().hasPrefix("https://") }

    struct Missing: Error, CustomStringConvertible {
        let url: String
        let tried: String
        var description: String {
            "\(url) speaks HTTPS, and no site CA certificate to verify it against: give --ca FILE or set OTAMESH_ADMIN_CA "
                + "(on the gateway: otamesh keys site-ca --export-pem > site-ca.pem); none at \(tried)"
        }
    }

    /// The CA file to use; `dataDirectoryCA()` is evaluated only when needed (it loads the configuration).
    static func resolve(ca: String?, environment: [String: String], url: String, dataDirectoryCA: () throws -> String) throws -> String {
        if let ca { return ca }
        if let file = environment["OTAMESH_ADMIN_CA"], !file.isEmpty { return file }
        let path = try dataDirectoryCA()
        guard access(path, F_OK) == 0 else { throw Missing(url: url, tried: path) }
        return path
    }
}

/// The HTTP client an admin API URL is reached with: the process's shared one for http://, or
/// one that trusts the site CA alone (hostname checked) for https://. Clients are kept for the
/// life of the process, one per CA file.
struct AdminTransportClient: Sendable {
    let client: HTTPClient
    /// The CA file the client trusts, nil for plain HTTP.
    let caFile: String?

    static let plain = AdminTransportClient(client: .shared, caFile: nil)

    /// A site CA file that cannot be used.
    struct BadCA: Error, CustomStringConvertible {
        let file: String
        let reason: String
        var description: String { "site CA certificate \(file): \(reason) (on the gateway: otamesh keys site-ca --export-pem > site-ca.pem)" }
    }

    private static let clients = AdminHTTPSClients()

    static func verifying(caFile: String) throws -> AdminTransportClient {
        if let client = clients.get(caFile) { return AdminTransportClient(client: client, caFile: caFile) }
        guard access(caFile, R_OK) == 0 else { throw BadCA(file: caFile, reason: "cannot read it: \(String(cString: strerror(errno)))") }
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(caFile) } catch {
            throw BadCA(file: caFile, reason: "not a certificate in PEM: \(error)")
        }
        guard !certificates.isEmpty else { throw BadCA(file: caFile, reason: "holds no certificate") }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(certificates)
        tls.certificateVerification = .fullVerification
        tls.minimumTLSVersion = .tlsv12
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        // A refused certificate is reported at once with its reason, not retried until a timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = clients.insert(caFile) { HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration) }
        return AdminTransportClient(client: client, caFile: caFile)
    }
}

/// The HTTPS clients of this process by CA file (never shut down: they live as long as the process).
final class AdminHTTPSClients: Sendable {
    private let clients = Mutex<[String: HTTPClient]>([:])

    func get(_ file: String) -> HTTPClient? { clients.withLock { $0[file] } }

    func insert(_ file: String, _ make: () -> HTTPClient) -> HTTPClient {
        clients.withLock { clients in
            if let existing = clients[file] { return existing }
            let client = make()
            clients[file] = client
            return client
        }
    }
}

/// `--key FILE` for commands that talk to the admin API but sign nothing else (rollout commands
/// have their own `--key`, which signs their commands).
struct AdminKeyOption: ParsableArguments {
    @Option(
        help: "Site admin private key (PEM) that signs each admin API request, instead of a token (default: $OTAMESH_ADMIN_KEY, else $OTAMESH_ADMIN_KEY_FILE).")
    var key: String?
}

/// Which credential the CLI presents to the admin API; pure apart from the file reads.
/// Order: `--token-file FILE`, `--key FILE` (a site admin key signs each request),
/// `$OTAMESH_TOKEN`, the data directory's token files (admin, then read-only), then a site admin
/// key from `$OTAMESH_ADMIN_KEY` (PEM text) or `$OTAMESH_ADMIN_KEY_FILE`.
enum AdminCredentialLookup {
    struct Found {
        let credential: AdminClient.Credential
        /// `--token-file FILE`, `OTAMESH_TOKEN`, a key's or token's file (never the secret).
        let source: String
    }

    struct Missing: Error, CustomStringConvertible {
        let tried: [String]
        var description: String {
            "no admin API token: give --token-file FILE or set OTAMESH_TOKEN (the gateway's DATA/keys/admin.token; "
                + "read.token for reading only), or sign with a site admin key (--key FILE, OTAMESH_ADMIN_KEY_FILE); "
                + "none readable at \(tried.joined(separator: ", "))"
        }
    }

    static func resolve(tokenFile: String?, keyFile: String?, environment: [String: String], candidates: () throws -> [String]) throws -> Found {
        if let tokenFile {
            return Found(credential: .token(try AdminTokens.read(tokenFile)), source: tokenFile)
        }
        if let keyFile {
            return try signing(SigningKeyLookup.resolve(keyFile: keyFile, environment: [:], read: readKey))
        }
        do {
            let found = try AdminTokenLookup.resolve(tokenFile: nil, environment: environment, candidates: candidates)
            return Found(credential: .token(found.token), source: found.source)
        } catch let missing as AdminTokenLookup.Missing {
            let key: SigningKeyLookup.Found
            do { key = try SigningKeyLookup.resolve(keyFile: nil, environment: environment, read: readKey) } catch {
                if environment["OTAMESH_ADMIN_KEY"] != nil || environment["OTAMESH_ADMIN_KEY_FILE"] != nil { throw error }
                throw Missing(tried: missing.tried)
            }
            return try signing(key)
        }
    }

    static func signing(_ found: SigningKeyLookup.Found) throws -> Found {
        Found(credential: .key(try KeyFile.parse(pem: found.pem, file: found.source)), source: found.source)
    }

    static func readKey(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw RolloutText.Invalid(option: "admin key", reason: "cannot read \(path)")
        }
        defer { try? handle.close() }
        return String(decoding: (try? handle.read(upToCount: 64 << 10)) ?? Data(), as: UTF8.self)
    }
}

/// Where the CLI's admin API token comes from, in order; pure apart from the file reads.
enum AdminTokenLookup {
    struct Found: Equatable {
        let token: String
        /// `--token-file FILE`, `OTAMESH_TOKEN` or the file it came from (never the token).
        let source: String
    }

    struct Missing: Error, CustomStringConvertible {
        let tried: [String]
        var description: String {
            "no admin API token: give --token-file FILE or set OTAMESH_TOKEN (the gateway's DATA/keys/admin.token; "
                + "read.token for reading only); none readable at \(tried.joined(separator: ", "))"
        }
    }

    /// `--token-file` (must be readable), `OTAMESH_TOKEN` (non-empty), then the first readable
    /// of `candidates()` (evaluated only when needed: it loads the configuration).
    static func resolve(tokenFile: String?, environment: [String: String], candidates: () throws -> [String]) throws -> Found {
        if let tokenFile {
            return Found(token: try AdminTokens.read(tokenFile), source: tokenFile)
        }
        if let text = environment["OTAMESH_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            return Found(token: try AdminTokens.parse(Array(text.utf8), file: "$OTAMESH_TOKEN"), source: "OTAMESH_TOKEN")
        }
        let paths = try candidates()
        for path in paths where access(path, R_OK) == 0 {
            return Found(token: try AdminTokens.read(path), source: path)
        }
        throw Missing(tried: paths)
    }
}

/// A gateway's admin API (`/api/v1`) with a credential on every request: a bearer token, or a
/// site admin key that signs each request (``SignedRequest``). Answers other than 2xx become an
/// ``AdminAPIError`` carrying the gateway's own plain-text reason; no answer at all becomes
/// ``AdminUnreachable``.
struct AdminClient: Sendable {
    enum Credential: Sendable {
        case token(String)
        case key(TUFSigner)
    }

    let base: String
    let credential: Credential
    let transport: AdminTransportClient

    init(admin: String, credential: Credential, transport: AdminTransportClient = .plain) {
        base = admin.hasSuffix("/") ? String(admin.dropLast()) : admin
        self.credential = credential
        self.transport = transport
    }

    init(admin: String, token: String) {
        self.init(admin: admin, credential: .token(token))
    }

    func get(_ path: String, maxLength: Int64 = 64 << 20) async throws -> [UInt8] {
        try await send("GET", path, body: nil, maxLength: maxLength)
    }

    /// POST; `timeout` bounds the whole exchange (a bundle import verifies and stores everything
    /// before it answers).
    func post(
        _ path: String, body: [UInt8]? = nil, contentType: String? = nil, maxLength: Int64 = 16 << 20,
        timeout: Int64 = 30
    ) async throws -> [UInt8] {
        try await send("POST", path, body: body, contentType: contentType, maxLength: maxLength, timeout: timeout)
    }

    /// GET and decode JSON.
    func get<T: Decodable>(_ type: T.Type, _ path: String) async throws -> T {
        try decode(type, try await get(path), what: "GET /api/v1/\(path)")
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw AdminAPIError(method: "", path: what, status: 0, message: "unexpected answer (not the JSON expected: \(error))")
        }
    }

    /// Whether anything answers `GET URL/healthz` (open, no credential needed).
    static func answers(_ url: String, transport: AdminTransportClient = .plain) async -> Bool {
        await probe(url, transport: transport) == nil
    }

    /// nil when something answers `GET URL/healthz`; else why not: ``AdminUnreachable``, or
    /// ``AdminTLSRefused`` when the TLS handshake failed (a certificate the site CA did not
    /// issue or that does not name the host, or no HTTPS there at all).
    static func probe(_ url: String, transport: AdminTransportClient) async -> (any Error)? {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        var request = HTTPClientRequest(url: "\(base)/healthz")
        request.method = .GET
        do {
            let response = try await transport.client.execute(request, timeout: .seconds(5))
            _ = try await response.body.collect(upTo: 4096)
            return nil
        } catch let error as NIOSSLError {
            return AdminTLSRefused(url: base, caFile: transport.caFile, reason: AdminTLSRefused.explain(error))
        } catch let error as NIOSSLExtraError {
            return AdminTLSRefused(url: base, caFile: transport.caFile, reason: AdminTLSRefused.explain(error))
        } catch {
            return AdminUnreachable(url: base)
        }
    }

    /// The request target as it goes on the wire (what a signature covers): the base URL's own
    /// path, then `/api/v1/` and the escaped path.
    func target(_ path: String) -> String {
        var prefix = ""
        if let scheme = base.range(of: "://") {
            let rest = base[scheme.upperBound...]
            if let slash = rest.firstIndex(of: "/") { prefix = String(rest[slash...]) }
        }
        let (route, query) = Self.split(path)
        return "\(prefix)/api/v1/\(HTTPFiles.escapePath(route))" + (query.map { "?\($0)" } ?? "")
    }

    /// The admin API's own paths may carry a plain query (`rollouts/ID?outcomes=1`): only the
    /// route before it is escaped.
    static func split(_ path: String) -> (route: String, query: String?) {
        let parts = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return (parts[0], parts.count > 1 ? parts[1] : nil)
    }

    func authorization(_ method: String, _ path: String, body: [UInt8]?) throws -> String {
        switch credential {
        case .token(let token): return "Bearer \(token)"
        case .key(let signer):
            return try SignedRequest.sign(
                with: signer, method: method, target: target(path), body: body ?? [],
                time: WallClock.system.now().wholeSeconds, nonce: SignedRequest.nonce()
            ).header
        }
    }

    /// Bases this process has found answering: a gateway that does not answer is reported after a
    /// 5-second probe, not after the HTTP client's 30 s of connection retries.
    static let answering = AnsweringBases()

    private func send(
        _ method: String, _ path: String, body: [UInt8]?, contentType: String? = nil, maxLength: Int64,
        timeout: Int64 = 30
    ) async throws -> [UInt8] {
        if !Self.answering.contains(base) {
            if let failure = await Self.probe(base, transport: transport) { throw failure }
            Self.answering.insert(base)
        }
        let files = HTTPFiles(
            baseURL: "\(base)/api/v1", client: transport.client, timeout: .seconds(timeout),
            headers: [(name: "Authorization", value: try authorization(method, path, body: body))])
        let answer: HTTPFiles.Answer
        do {
            let (route, query) = Self.split(path)
            answer = try await files.exchange(route, query: query, method: method, body: body, contentType: contentType, maxLength: maxLength)
        } catch .fetch {
            throw AdminUnreachable(url: base)
        }
        guard (200..<300).contains(answer.status) else {
            throw AdminAPIError(
                method: method, path: "/api/v1/\(path)", status: answer.status,
                message: answer.text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return answer.body
    }
}

/// No answer from the admin API at all (refused, unreachable, timed out).
struct AdminUnreachable: Error, CustomStringConvertible {
    let url: String
    var description: String {
        let hint = AdminCALookup.isHTTPS(url) ? "" : "; an admin API off loopback speaks HTTPS: https://"
        return "no gateway answers at \(url): is it running? (--admin URL)\(hint)"
    }
}

/// The TLS handshake with an https:// admin API failed: the gateway is not the one the site CA
/// vouches for (or speaks no HTTPS there). Nothing was sent: no credential left this machine.
struct AdminTLSRefused: Error, CustomStringConvertible {
    let url: String
    let caFile: String?
    let reason: String

    var description: String {
        "\(url): refused the gateway's TLS connection, nothing sent: \(reason) "
            + "(verified against the site CA \(caFile ?? "?"); --ca FILE names the site's CA certificate)"
    }

    static func explain(_ error: NIOSSLExtraError) -> String {
        error == .failedToValidateHostname
            ? "its certificate does not name this host (on the gateway, otamesh keys site-ca --address IP --name NAME reissues it; use an address it names)"
            : "\(error)"
    }

    static func explain(_ error: NIOSSLError) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") { return "its certificate was not issued by this site CA" }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("HTTP_REQUEST") {
            return "it does not speak HTTPS there (its admin API may be plain http://)"
        }
        return text
    }
}

/// The admin API said no: the method and path, the status, the gateway's reason, and a hint.
struct AdminAPIError: Error, CustomStringConvertible {
    let method: String
    let path: String
    let status: Int
    let message: String

    var description: String {
        let request = method.isEmpty ? path : "\(method) \(path)"
        guard status != 0 else { return "\(request): \(message)" }
        var text = "\(request): HTTP \(status)"
        if !message.isEmpty { text += ": \(message)" }
        switch status {
        case 401 where !message.hasPrefix("signed request refused"): text += " (give the gateway's token: --token-file FILE or OTAMESH_TOKEN)"
        case 404 where message.isEmpty: text += " (not found)"
        default: break
        }
        return text
    }
}

/// The admin API bases this process has found answering (see ``AdminClient/answering``).
final class AnsweringBases: Sendable {
    private let bases = Mutex<Set<String>>([])

    func contains(_ base: String) -> Bool { bases.withLock { $0.contains(base) } }
    func insert(_ base: String) { bases.withLock { _ = $0.insert(base) } }
}
