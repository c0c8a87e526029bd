/// Which HTTP proxy a request goes through: `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` (either
/// case, curl's conventions) or values set in the configuration, which win. Pure.
public struct ProxySettings: Sendable, Equatable {
    public struct Proxy: Sendable, Equatable {
        public let host: String
        public let port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public var http: Proxy?
    public var https: Proxy?
    /// Host suffixes, IP literals or `*` that bypass the proxy.
    public var noProxy: [String] = []

    public init(http: Proxy? = nil, https: Proxy? = nil, noProxy: [String] = []) {
        self.http = http
        self.https = https
        self.noProxy = noProxy
    }

    /// Reads the conventional variables (lower case wins, as in curl).
    public static func from(environment env: [String: String]) -> ProxySettings {
        func value(_ name: String) -> String? {
            (env[name.lowercased()] ?? env[name.uppercased()]).flatMap { $0.isEmpty ? nil : $0 }
        }
        var settings = ProxySettings()
        settings.http = value("http_proxy").flatMap(parse)
        settings.https = value("https_proxy").flatMap(parse)
        settings.noProxy = value("no_proxy").map(parseList) ?? []
        return settings
    }

    /// Parses `http://host:port`, `host:port` or `host` (port 80).
    public static func parse(_ text: String) -> Proxy? {
        var rest = Substring(text)
        if let scheme = rest.range(of: "://") {
            guard rest[..<scheme.lowerBound].lowercased() == "http" else { return nil }
            rest = rest[scheme.upperBound...]
        }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }  // credentials are not supported
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard !rest.isEmpty else { return nil }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            let host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.isEmpty { return Proxy(host: host, port: 80) }
            guard after.hasPrefix(":"), let port = Int(after.dropFirst()), (1...65535).contains(port) else { return nil }
            return Proxy(host: host, port: port)
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return Proxy(host: String(parts[0]), port: 80)
        case 2:
            guard let port = Int(parts[1]), (1...65535).contains(port), !parts[0].isEmpty else { return nil }
            return Proxy(host: String(parts[0]), port: port)
        default: return nil
        }
    }

    public static func parseList(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0 == " " }).map { $0.lowercased() }.filter { !$0.isEmpty }
    }

    /// The proxy for a URL, or nil for a direct connection.
    public func proxy(forURL url: String) -> Proxy? {
        guard let (scheme, host) = Self.schemeAndHost(url) else { return nil }
        let proxy = scheme == "https" ? https : (scheme == "http" ? http : nil)
        guard let proxy, !bypasses(host) else { return nil }
        return proxy
    }

    /// NO_PROXY matching: `*`, an exact host, or a domain suffix (`.site.lan` or `site.lan`
    /// matches `gw.site.lan`).
    public func bypasses(_ host: String) -> Bool {
        let host = host.lowercased()
        for entry in noProxy {
            if entry == "*" { return true }
            let bare = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            let name = bare.split(separator: ":").count == 2 && !bare.contains("[") ? String(bare.split(separator: ":")[0]) : bare
            if host == name || host.hasSuffix("." + name) { return true }
        }
        return false
    }

    static func schemeAndHost(_ url: String) -> (String, String)? {
        guard let scheme = url.range(of: "://") else { return nil }
        var rest = url[scheme.upperBound...]
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<slash] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        let host: Substring
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = rest[rest.index(after: rest.startIndex)..<close]
        } else {
            host = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0]
        }
        return (url[..<scheme.lowerBound].lowercased(), String(host))
    }
}
