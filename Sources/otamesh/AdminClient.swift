import ArgumentParser
import Foundation
import OTAMeshGateway
import OTAMeshTransfer
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// Options of every command that talks to a gateway's admin API: where it is, and where the
/// bearer token comes from. The token itself is never a command-line value (it would show in
/// `ps` and shell history): `--token-file FILE`, else `$OTAMESH_TOKEN`, else the data
/// directory's `keys/admin.token`, else its `keys/read.token` (whichever is readable first).
struct AdminOptions: ParsableArguments {
    @Option(help: "The gateway's admin API (default http://127.0.0.1:8071).")
    var admin = "http://127.0.0.1:8071"

    @Option(help: ArgumentHelp(
        "File holding the admin API bearer token.",
        discussion: "Default: $OTAMESH_TOKEN, else DATA/keys/admin.token, else DATA/keys/read.token (admin.token_file / admin.read_token_file when configured)."))
    var tokenFile: String?

    @OptionGroup var config: ConfigOptions

    /// The client, with the token found as described above.
    func client() throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        let token = try AdminTokenLookup.resolve(tokenFile: tokenFile, environment: environment) {
            let configuration = try config.load()
            return [configuration.adminTokenPath, configuration.adminReadTokenPath]
        }
        return AdminClient(admin: admin, token: token.token)
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

/// A gateway's admin API (`/api/v1`) with the bearer token on every request. Answers other than
/// 2xx become an ``AdminAPIError`` carrying the gateway's own plain-text reason.
struct AdminClient: Sendable {
    let base: String
    let files: HTTPFiles

    init(admin: String, token: String) {
        base = admin.hasSuffix("/") ? String(admin.dropLast()) : admin
        files = HTTPFiles(baseURL: "\(base)/api/v1", headers: [(name: "Authorization", value: "Bearer \(token)")])
    }

    func get(_ path: String, maxLength: Int64 = 64 << 20) async throws -> [UInt8] {
        try await send("GET", path, body: nil, maxLength: maxLength)
    }

    func post(_ path: String, body: [UInt8]? = nil, maxLength: Int64 = 16 << 20) async throws -> [UInt8] {
        try await send("POST", path, body: body, maxLength: maxLength)
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

    private func send(_ method: String, _ path: String, body: [UInt8]?, maxLength: Int64) async throws -> [UInt8] {
        // The admin API's own paths carry plain queries (`rollouts/ID?outcomes=1`): only the path is escaped.
        let parts = path.split(separator: "?", maxSplits: 1).map(String.init)
        let answer = try await files.exchange(parts.first ?? path, query: parts.count > 1 ? parts[1] : nil, method: method, body: body, maxLength: maxLength)
        guard (200..<300).contains(answer.status) else {
            throw AdminAPIError(method: method, path: "/api/v1/\(path)", status: answer.status,
                                message: answer.text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return answer.body
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
        case 401: text += " (give the gateway's token: --token-file FILE or OTAMESH_TOKEN)"
        case 404 where message.isEmpty: text += " (not found)"
        default: break
        }
        return text
    }
}
