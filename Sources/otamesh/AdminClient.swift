import ArgumentParser
import Foundation
import OTAMeshGateway
import OTAMeshTransfer
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// Options of every command that talks to a gateway's admin API: where it is, and which
/// credential the CLI presents. A token is never a command-line value (it would show in `ps` and
/// shell history). See ``AdminCredentialLookup`` for the order; the address is `--admin URL`,
/// else the URL the agent of the data directory wrote to `DATA/admin.url` when it started, else
/// `admin.listen` of the configuration (all interfaces → loopback), else http://127.0.0.1:8071.
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The gateway's admin API URL.",
        discussion: "Default: DATA/admin.url (written by a running agent of --data-dir / --config), else admin.listen of the configuration, else http://127.0.0.1:8071."))
    var admin: String?

    @Option(help: ArgumentHelp(
        "File holding the admin API bearer token.",
        discussion: "Default: $OTAMESH_TOKEN, else DATA/keys/admin.token, else DATA/keys/read.token (admin.token_file / admin.read_token_file when configured); "
            + "without a token, a site admin key signs each request (--key FILE, $OTAMESH_ADMIN_KEY, $OTAMESH_ADMIN_KEY_FILE)."))
    var tokenFile: String?

    @OptionGroup var config: ConfigOptions

    /// The admin API URL as described above (reads, never creates, the data directory).
    func address() throws -> String {
        if let admin { return admin }
        return AdminAddress.resolve(try config.load())
    }

    /// The client with the credential ``AdminCredentialLookup`` finds; `key` is a `--key FILE`
    /// given to the command (a site admin private key).
    func client(key: String? = nil) throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        let credential = try AdminCredentialLookup.resolve(tokenFile: tokenFile, keyFile: key, environment: environment) {
            let configuration = try config.load()
            return [configuration.adminTokenPath, configuration.adminReadTokenPath]
        }
        return AdminClient(admin: try address(), credential: credential.credential)
    }
}

/// `--key FILE` for commands that talk to the admin API but sign nothing else (rollout commands
/// have their own `--key`, which signs their commands).
struct AdminKeyOption: ParsableArguments {
    @Option(help: "Site admin private key (PEM) that signs each admin API request, instead of a token (default: $OTAMESH_ADMIN_KEY, else $OTAMESH_ADMIN_KEY_FILE).")
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

    init(admin: String, credential: Credential) {
        base = admin.hasSuffix("/") ? String(admin.dropLast()) : admin
        self.credential = credential
    }

    init(admin: String, token: String) {
        self.init(admin: admin, credential: .token(token))
    }

    func get(_ path: String, maxLength: Int64 = 64 << 20) async throws -> [UInt8] {
        try await send("GET", path, body: nil, maxLength: maxLength)
    }

    /// POST; `timeout` bounds the whole exchange (a bundle import verifies and stores everything
    /// before it answers).
    func post(_ path: String, body: [UInt8]? = nil, contentType: String? = nil, maxLength: Int64 = 16 << 20,
              timeout: Int64 = 30) async throws -> [UInt8] {
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
    static func answers(_ url: String) async -> Bool {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        return (try? await HTTPFiles(baseURL: base, timeout: .seconds(5)).exchange("healthz", maxLength: 4096)) != nil
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
            return try SignedRequest.sign(with: signer, method: method, target: target(path), body: body ?? [],
                                          time: Int64(Date().timeIntervalSince1970), nonce: SignedRequest.nonce()).header
        }
    }

    /// Bases this process has found answering: a gateway that does not answer is reported after a
    /// 5-second probe, not after the HTTP client's 30 s of connection retries.
    static let answering = AnsweringBases()

    private func send(_ method: String, _ path: String, body: [UInt8]?, contentType: String? = nil, maxLength: Int64,
                      timeout: Int64 = 30) async throws -> [UInt8] {
        if !Self.answering.contains(base) {
            guard await Self.answers(base) else { throw AdminUnreachable(url: base) }
            Self.answering.insert(base)
        }
        let files = HTTPFiles(baseURL: "\(base)/api/v1", timeout: .seconds(timeout),
                              headers: [(name: "Authorization", value: try authorization(method, path, body: body))])
        let answer: HTTPFiles.Answer
        do {
            let (route, query) = Self.split(path)
            answer = try await files.exchange(route, query: query, method: method, body: body, contentType: contentType, maxLength: maxLength)
        } catch .fetch {
            throw AdminUnreachable(url: base)
        }
        guard (200..<300).contains(answer.status) else {
            throw AdminAPIError(method: method, path: "/api/v1/\(path)", status: answer.status,
                                message: answer.text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return answer.body
    }
}

/// No answer from the admin API at all (refused, unreachable, timed out).
struct AdminUnreachable: Error, CustomStringConvertible {
    let url: String
    var description: String { "no gateway answers at \(url): is it running? (--admin URL)" }
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
final class AnsweringBases: @unchecked Sendable {
    private let lock = NSLock()
    private var bases: Set<String> = []

    func contains(_ base: String) -> Bool { lock.withLock { bases.contains(base) } }
    func insert(_ base: String) { lock.withLock { _ = bases.insert(base) } }
}
