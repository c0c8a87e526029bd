import OTAMeshCommon
import OTAMeshFirmware
import Testing

@testable import OTAMeshGateway

@Suite("agent configuration")
struct ConfigurationTests {
    @Test("embedded defaults")
    func defaults() {
        let config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.dataDirectory == "./otamesh-data")
        #expect(config.adminListen == ListenAddress(host: "127.0.0.1", port: 8071))
        #expect(config.cacheQuotaBytes == 8 << 30)
        #expect(config.partialMaxAge == 7 * 86_400)
        #expect(config.logLevel == "info" && config.logFormat == .text)
    }

    @Test("file < environment < flags")
    func layering() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.apply(
            yaml: """
                dataDir: /var/lib/otamesh
                nodeName: roof
                admin:
                  listen: 0.0.0.0:9000
                cache:
                  quota: 512MiB
                  partialMaxAge: 12h
                log:
                  level: debug
                  format: json
                """, source: "otamesh.yaml")
        #expect(config.dataDirectory == "/var/lib/otamesh")
        #expect(config.nodeName == "roof")
        #expect(config.adminListen == ListenAddress(host: "0.0.0.0", port: 9000))
        #expect(config.cacheQuotaBytes == 512 << 20)
        #expect(config.partialMaxAge == 43_200)
        #expect(config.logFormat == .json && config.logLevel == "debug")
        try config.apply(environment: ["OTAMESH_CACHE_QUOTA": "unlimited", "OTAMESH_DATA_DIR": "/srv/otamesh", "HOME": "/root"])
        #expect(config.cacheQuotaBytes == nil)
        #expect(config.dataDirectory == "/srv/otamesh")
        try config.set("dataDir", "./here", source: "--data-dir")
        #expect(config.dataDirectory == "./here")
    }

    @Test("unknown keys and bad values are errors that name the source and key")
    func errors() {
        var config = AgentConfiguration(nodeName: "gw-1")
        #expect(throws: ConfigurationError.unknownKey(source: "f.yaml: cache.qouta", key: "cache.qouta")) {
            try config.apply(yaml: "cache:\n  qouta: 1GiB\n", source: "f.yaml")
        }
        #expect(throws: ConfigurationError.self) { try config.apply(yaml: "- a\n- b\n", source: "f.yaml") }
        #expect(throws: ConfigurationError.self) { try config.apply(yaml: "admin: {listen: [1, 2]}", source: "f.yaml") }
        #expect(throws: ConfigurationError.self) { try config.apply(environment: ["OTAMESH_LOG_FORMAT": "xml"]) }
        #expect(throws: ConfigurationError.self) { try config.set("admin.listen", "localhost", source: "--admin-listen") }
        #expect(throws: ConfigurationError.self) { try config.set("admin.listen", "h:70000", source: "--admin-listen") }
        #expect(config == AgentConfiguration(nodeName: "gw-1"), "a failed apply of bad values changed nothing it rejected")
    }

    @Test("device listeners, idle timeout, proxies and the retry timeout")
    func deviceAndTransferKeys() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.deviceListen == ListenAddress(host: "0.0.0.0", port: 8070))
        #expect(config.deviceTLSListen == ListenAddress(host: "0.0.0.0", port: 8443))
        #expect(config.deviceIdleTimeout == 120 && config.transferRetryTimeout == 300)
        try config.apply(
            yaml: """
                device:
                  listen: 10.0.0.2:80
                  tlsListen: off
                  idleTimeout: 30s
                upstream:
                  proxy: http://proxy.site:3128
                  noProxy: .lan, 10.0.0.5
                transfer:
                  retryTimeout: 10m
                """, source: "otamesh.yaml")
        #expect(config.deviceListen == ListenAddress(host: "10.0.0.2", port: 80))
        #expect(config.deviceTLSListen == nil)
        #expect(config.deviceIdleTimeout == 30 && config.transferRetryTimeout == 600)
        // The configured proxy wins over the environment's; NO_PROXY from the file too.
        let proxies = config.proxySettings(environment: ["HTTP_PROXY": "http://other:8080", "NO_PROXY": "*"])
        #expect(proxies.proxy(forURL: "http://upstream.example/metadata") == .init(host: "proxy.site", port: 3128))
        #expect(proxies.proxy(forURL: "http://gw.site.lan/x") == nil)
        #expect(
            AgentConfiguration(nodeName: "x").proxySettings(environment: ["https_proxy": "p:1"])
                .proxy(forURL: "https://u/") == .init(host: "p", port: 1))
        for (key, value) in [
            ("device.listen", "nowhere"), ("device.tlsListen", "on"), ("device.idleTimeout", "0s"),
            ("upstream.proxy", "socks5://p:1"), ("transfer.retryTimeout", "soon"),
        ] {
            #expect(throws: ConfigurationError.self, "\(key)=\(value)") { try config.set(key, value, source: "--x") }
        }
    }

    @Test("admin API token files: DATA/keys by default, overridden by file, environment or flag")
    func adminTokenFiles() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.adminTokenFile == nil && config.adminReadTokenFile == nil)
        #expect(config.adminTokenPath == "./otamesh-data/keys/admin.token")
        #expect(config.adminReadTokenPath == "./otamesh-data/keys/read.token")
        try config.set("dataDir", "/var/lib/otamesh", source: "--data-dir")
        #expect(config.adminTokenPath == "/var/lib/otamesh/keys/admin.token" && config.adminReadTokenPath == "/var/lib/otamesh/keys/read.token")
        try config.apply(
            yaml: """
                admin:
                  listen: 127.0.0.1:8071
                  tokenFile: /etc/otamesh/admin.token
                  readTokenFile: /etc/otamesh/read.token
                """, source: "otamesh.yaml")
        #expect(config.adminTokenPath == "/etc/otamesh/admin.token" && config.adminReadTokenPath == "/etc/otamesh/read.token")
        try config.apply(environment: ["OTAMESH_ADMIN_TOKEN_FILE": "/run/secrets/admin", "OTAMESH_ADMIN_READ_TOKEN_FILE": "/run/secrets/read"])
        #expect(config.adminTokenPath == "/run/secrets/admin" && config.adminReadTokenPath == "/run/secrets/read")
        try config.set("admin.tokenFile", "./a.token", source: "--admin-token-file")
        #expect(config.adminTokenPath == "./a.token")
        #expect(throws: ConfigurationError.self) { try config.set("admin.tokenFile", "", source: "--admin-token-file") }
        let misspelt = #expect(throws: ConfigurationError.unknownKey(source: "f.yaml: admin.tokenfile", key: "admin.tokenfile")) {
            try config.apply(yaml: "admin:\n  tokenfile: x\n", source: "f.yaml")
        }
        #expect(misspelt?.description == "f.yaml: admin.tokenfile: unknown configuration key 'admin.tokenfile'; did you mean admin.tokenFile?")
        let documented = AgentConfiguration.keys.filter { $0.file.hasPrefix("admin.") }.map { "\($0.file) \($0.env) \($0.flag)" }
        #expect(
            documented == [
                "admin.listen OTAMESH_ADMIN_LISTEN --admin-listen",
                "admin.tokenFile OTAMESH_ADMIN_TOKEN_FILE --admin-token-file",
                "admin.readTokenFile OTAMESH_ADMIN_READ_TOKEN_FILE --admin-read-token-file",
                "admin.idleTimeout OTAMESH_ADMIN_IDLE_TIMEOUT --admin-idle-timeout",
                "admin.tls OTAMESH_ADMIN_TLS --admin-tls",
                "admin.insecureClearText OTAMESH_ADMIN_INSECURE_CLEAR_TEXT --admin-insecure-clear-text",
            ])
    }

    @Test("admin tokens: generated 32 random bytes as base64url, compared by role, files read strictly")
    func adminTokens() throws {
        let a = AdminTokens.generate()
        let b = AdminTokens.generate()
        #expect(a.count == 43 && a != b)
        #expect(a.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 })
        let tokens = AdminTokens(admin: a, readOnly: b)
        #expect(tokens.role(of: a) == .admin && tokens.role(of: b) == .readOnly)
        #expect(tokens.role(of: a + "x") == nil && tokens.role(of: "") == nil && tokens.role(of: String(a.dropLast())) == nil)
        #expect(AdminTokens.bearerToken("Bearer abc") == "abc")
        #expect(AdminTokens.bearerToken("bearer   abc ") == "abc")
        #expect(AdminTokens.bearerToken("Basic abc") == nil && AdminTokens.bearerToken("Bearer ") == nil)
        #expect(try AdminTokens.parse(Array("  \(a)\n".utf8), file: "t") == a)
        #expect(throws: AdminTokenError.invalid(file: "t", reason: "empty")) { try AdminTokens.parse(Array("\n".utf8), file: "t") }
        #expect(throws: AdminTokenError.self) { try AdminTokens.parse(Array("too-short".utf8), file: "t") }
        #expect(throws: AdminTokenError.self) { try AdminTokens.parse(Array("two words of token text".utf8), file: "t") }
    }

    @Test("sizes and durations")
    func units() {
        #expect(AgentConfiguration.parseSize("4096") == 4096)
        #expect(AgentConfiguration.parseSize("64MiB") == 64 << 20)
        #expect(AgentConfiguration.parseSize("8 GiB") == 8 << 30)
        #expect(AgentConfiguration.parseSize("2GB") == 2_000_000_000)
        #expect(AgentConfiguration.parseSize("1.5GiB") == nil)
        #expect(AgentConfiguration.parseSize("99999999999TiB") == nil, "overflow is rejected")
        #expect(AgentConfiguration.parseSize("lots") == nil)
        #expect(AgentConfiguration.parseDuration("90") == 90)
        #expect(AgentConfiguration.parseDuration("30m") == 1_800)
        #expect(AgentConfiguration.parseDuration("7d") == 604_800)
        #expect(AgentConfiguration.parseDuration("7w") == nil)
        #expect(ListenAddress("[::1]:8071") == ListenAddress(host: "::1", port: 8071))
        #expect(ListenAddress(":8071") == ListenAddress(host: "0.0.0.0", port: 8071))
        #expect(ListenAddress("[::1]:8071")?.description == "[::1]:8071")
    }

    @Test("JSON log lines escape what RFC 8259 requires")
    func jsonQuoting() {
        #expect(jsonQuoted("a\"b\\c\nd\u{01}é") == "\"a\\\"b\\\\c\\nd\\u0001é\"")
        let stamp = JSONLogHandler.timestamp()
        #expect(stamp.count == 24 && stamp.hasSuffix("Z"))
    }
}
