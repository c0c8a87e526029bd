import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where a data directory's running agent answers: the agent writes its admin API URL to
/// `DATA/admin.url` once the listener is up, so CLI commands given only `--data-dir` (or
/// `--config`) find it even on a port chosen at start (`admin.listen: 127.0.0.1:0`), and its
/// scheme: `https://` when the admin API speaks TLS (`admin.tls`).
public enum AdminAddress {
    /// The file an agent writes when its admin listener is up.
    public static func recordedPath(dataDirectory: String) -> String { "\(dataDirectory)/admin.url" }

    /// Writes `DATA/admin.url` (mode 0644; the URL is no secret). Failing to write it only
    /// means CLI commands need `--admin URL`, so it never stops the agent.
    public static func record(host: String, port: Int, scheme: String = "http", dataDirectory: String) {
        let text = url(ListenAddress(host: host, port: port), scheme: scheme) + "\n"
        let path = recordedPath(dataDirectory: dataDirectory)
        let temporary = "\(path).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o644]) else { return }
        rename(temporary, path)
    }

    /// `DATA/admin.url` when it holds a plausible URL, else `admin.listen` made reachable.
    public static func resolve(_ configuration: AgentConfiguration) -> String {
        recorded(dataDirectory: configuration.dataDirectory) ?? url(configuration.adminListen, scheme: configuration.adminScheme)
    }

    /// The URL in `DATA/admin.url`, if the file holds one (at most 512 bytes read).
    public static func recorded(dataDirectory: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: recordedPath(dataDirectory: dataDirectory)) else { return nil }
        defer { try? handle.close() }
        let bytes = (try? handle.read(upToCount: 512)) ?? Data()
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("http://") || text.hasPrefix("https://"), text.utf8.count < 512,
            text.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else { return nil }
        return text
    }

    /// `SCHEME://HOST:PORT` (http or https), with an all-interfaces host replaced by loopback.
    public static func url(_ listen: ListenAddress, scheme: String = "http") -> String {
        let host = listen.host == "0.0.0.0" || listen.host.isEmpty ? "127.0.0.1" : listen.host == "::" ? "::1" : listen.host
        return "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(listen.port)"
    }
}
