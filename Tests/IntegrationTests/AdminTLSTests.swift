import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The admin API off loopback (issue 17, item 6), with real agents and the real CLI. Agents bind
/// all interfaces (listening sends nothing); every client connects to 127.0.0.1 only.
@Suite("admin API off loopback: HTTPS with the site CA, clear text only when forced, failed tokens limited", .serialized)
struct AdminTLSTests {
    /// `curl` against loopback: (exit status, HTTP status or 0, headers and body).
    static func curl(_ arguments: [String]) throws -> (Int32, Int, String) {
        let (status, out, err) = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "5", "-D", "-", "-w", "\n%{http_code}"] + arguments)
        let code = out.split(separator: "\n").last.flatMap { Int($0) } ?? 0
        return (status, code, out + err)
    }

    /// The port of `scheme://HOST:PORT`, made a loopback URL.
    static func loopback(_ url: String) -> String {
        let port = url.split(separator: ":").last ?? ""
        let scheme = url.hasPrefix("https://") ? "https" : "http"
        return "\(scheme)://127.0.0.1:\(port)"
    }

    @Test("all interfaces without a site CA: refused at start, exit 2, one line naming the fixes, nothing created; forced: clear text")
    func clearTextRefusedUnlessForced() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let ended = try StartupFailureTests.start(data: data, ["--admin-listen", "0.0.0.0:0"])
        #expect(ended.status == 2, "\(ended)")
        let line = try #require(ended.reason, "\(ended)")
        #expect(line.hasPrefix("otamesh agent: admin.listen 0.0.0.0:0: "), "\(line)")
        for fix in ["otamesh keys site-ca", "--admin-insecure-clear-text", "127.0.0.1"] { #expect(line.contains(fix), "\(fix): \(line)") }
        #expect(!FileManager.default.fileExists(atPath: data), "a refused start creates nothing")
        // admin.tls off on all interfaces: refused too.
        let off = try StartupFailureTests.start(data: data, ["--admin-listen", "0.0.0.0:0", "--admin-tls", "off"])
        #expect(off.status == 2 && (off.reason ?? "").contains("admin.tls is off"), "\(off)")
        // A typo in the mode is a configuration error naming the flag.
        let typo = try StartupFailureTests.start(data: data, ["--admin-tls", "yes"])
        #expect(typo.status == 2 && (typo.reason ?? "").contains("expected auto, on or off"), "\(typo)")

        let gateway = try Gateway.start(data: data, extra: ["--admin-listen", "0.0.0.0:0", "--admin-insecure-clear-text", "--gossip-listen", "off"])
        defer { gateway.stop() }
        #expect(gateway.admin.hasPrefix("http://0.0.0.0:"), "\(gateway.admin)")
        let (_, code, _) = try Self.curl([Self.loopback(gateway.admin) + "/healthz"])
        #expect(code == 200)
        // The warning is logged before the banner, but stderr is read apart from stdout: wait for it.
        #expect(waitUntil(timeout: 10) { gateway.child.stderr.text.contains("clear text") }, "the forced start warns: \(gateway.child.stderr.text)")
        let recorded = try String(contentsOfFile: "\(data)/admin.url", encoding: .utf8)
        #expect(recorded.hasPrefix("http://127.0.0.1:"), "\(recorded)")
    }

    @Test("with a site CA: HTTPS off loopback; the CLI verifies against the site CA; another CA, no CA and plain HTTP are refused")
    func tlsWithSiteCA() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let made = try run(["keys", "site-ca", "--data-dir", data])
        #expect(made.0 == 0, "\(made)")
        let other = try run(["keys", "site-ca", "--data-dir", dir.file("other")])
        #expect(other.0 == 0, "\(other)")
        let gateway = try Gateway.start(data: data, extra: ["--admin-listen", "0.0.0.0:0", "--node-name", "gw-tls"])
        defer { gateway.stop() }
        #expect(gateway.admin.hasPrefix("https://0.0.0.0:"), "\(gateway.admin)")
        let url = Self.loopback(gateway.admin)
        let recorded = try String(contentsOfFile: "\(data)/admin.url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(recorded == url)

        // curl with the site CA: verified; plain HTTP to the HTTPS port: no HTTP answer.
        let verified = try Self.curl(["--cacert", "\(data)/keys/site-ca.pem", "\(url)/healthz"])
        #expect(verified.0 == 0 && verified.1 == 200, "\(verified)")
        let plain = try Self.curl([url.replacingOccurrences(of: "https://", with: "http://") + "/healthz"])
        #expect(plain.0 != 0 && plain.1 == 0, "\(plain)")

        // The CLI on the gateway's machine: the data directory gives the URL, the token and the CA.
        let local = try run(["members", "--data-dir", data, "--json"])
        #expect(local.0 == 0 && local.1.contains("gw-tls"), "\(local)")
        // From elsewhere: --admin, --token-file and --ca (or OTAMESH_ADMIN_CA).
        let nowhere = dir.file("nowhere")
        let remote = try run(["members", "--admin", url, "--data-dir", nowhere, "--ca", "\(data)/keys/site-ca.pem"] + gateway.tokenArguments)
        #expect(remote.0 == 0 && remote.1.contains("gw-tls"), "\(remote)")
        let fromEnvironment = try run(
            ["members", "--admin", url, "--data-dir", nowhere] + gateway.tokenArguments,
            environment: ["OTAMESH_ADMIN_CA": "\(data)/keys/site-ca.pem"])
        #expect(fromEnvironment.0 == 0, "\(fromEnvironment)")

        // Another site's CA: the gateway is not verified, nothing is sent.
        let wrongCA = try run(["members", "--admin", url, "--data-dir", nowhere, "--ca", dir.file("other/keys/site-ca.pem")] + gateway.tokenArguments)
        #expect(wrongCA.0 == 1 && wrongCA.2.contains("not issued by this site CA") && wrongCA.2.contains("nothing sent"), "\(wrongCA)")
        // No CA at all: refused, with where to get one.
        let noCA = try run(["members", "--admin", url, "--data-dir", nowhere] + gateway.tokenArguments)
        #expect(noCA.0 == 1 && noCA.2.contains("no site CA certificate") && noCA.2.contains("--ca FILE"), "\(noCA)")
        // A CA file that is not one.
        let garbage = dir.file("garbage.pem")
        try "not a certificate".write(toFile: garbage, atomically: true, encoding: .utf8)
        let badCA = try run(["members", "--admin", url, "--data-dir", nowhere, "--ca", garbage] + gateway.tokenArguments)
        #expect(badCA.0 == 1 && badCA.2.contains("site CA certificate \(garbage)"), "\(badCA)")
        // http:// to the HTTPS port: no answer, with the hint.
        let http = try run(["members", "--admin", url.replacingOccurrences(of: "https://", with: "http://"), "--data-dir", nowhere] + gateway.tokenArguments)
        #expect(http.0 == 1 && http.2.contains("speaks HTTPS: https://"), "\(http)")
    }

    @Test("a certificate that does not name the address connected to: the CLI refuses it and says so")
    func hostnameMismatch() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        let made = try run(["keys", "site-ca", "--data-dir", data, "--address", "192.0.2.10", "--name", "gw-lan.example"])
        #expect(made.0 == 0, "\(made)")
        let gateway = try Gateway.start(data: data, extra: ["--admin-listen", "0.0.0.0:0", "--gossip-listen", "off"])
        defer { gateway.stop() }
        let members = try run(
            ["members", "--admin", Self.loopback(gateway.admin), "--data-dir", dir.file("nowhere"), "--ca", "\(data)/keys/site-ca.pem"]
                + gateway.tokenArguments)
        #expect(members.0 == 1 && members.2.contains("does not name this host"), "\(members)")
    }

    @Test("wrong tokens: 401 up to the burst, then 429 with Retry-After for every credential from that client; counted in /metrics")
    func failedTokensLimited() throws {
        let dir = try TemporaryDirectory()
        let gateway = try Gateway.start(data: dir.file("d"), extra: ["--gossip-listen", "off"])
        defer { gateway.stop() }
        let cache = "\(gateway.admin)/api/v1/cache"
        // One curl, one kept-alive connection: 11 wrong tokens, then (--next) the right one, all
        // within far less than the 6 s a token takes to grow back, whatever the machine's load.
        let format = ["-w", "CODE %{http_code} RETRY %header{retry-after}\n", "-o", "/dev/null"]
        var arguments = ["-sS", "--max-time", "20", "-H", "Authorization: Bearer wrong-token-xxxxxxxxxxxx"]
        for _ in 1...11 { arguments += format + [cache] }
        arguments += ["--next", "-sS", "--max-time", "20", "-H", "Authorization: Bearer \(gateway.token)"] + format + [cache]
        let (status, out, err) = try runProgram("/usr/bin/curl", arguments)
        let answers = out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: false).map(String.init) }
        #expect(status == 0 && answers.count == 12, "\(out) \(err)")
        #expect(answers.prefix(10).allSatisfy { $0.count > 1 && $0[1] == "401" }, "\(out)")
        // The 11th: limited, and told for how long (at most one refill period).
        let eleventh = answers.count > 10 ? answers[10] : []
        #expect(eleventh.count == 4 && eleventh[1] == "429" && (1...6).contains(Int(eleventh[3]) ?? 0), "\(out)")
        // While limited, the right token is not even looked at.
        let last = answers.last ?? []
        #expect(last.count > 1 && last[1] == "429", "\(out)")
        // /metrics stays open and counts them.
        let (_, metricsCode, metrics) = try Self.curl(["\(gateway.admin)/metrics"])
        #expect(metricsCode == 200)
        #expect(metrics.contains(#"otamesh_admin_auth_failures_total{credential="token"} 10"#), "\(metrics)")
        #expect(metrics.contains(#"otamesh_admin_auth_failures_total{credential="signature"} 0"#), "\(metrics)")
        #expect(metrics.contains("otamesh_admin_auth_limited_total 2"), "\(metrics)")
        // A token grows back (one per 6 s): the right token is accepted again then.
        var lastTry = Date.distantPast
        let accepted = waitUntil(timeout: 15) {
            guard Date().timeIntervalSince(lastTry) >= 0.5 else { return false }  // one request every half second
            lastTry = Date()
            return ((try? Self.curl(["-o", "/dev/null", "-H", "Authorization: Bearer \(gateway.token)", cache]))?.1 ?? 0) == 200
        }
        #expect(accepted)
        // A signed request that does not check out counts too, under its own label.
        let (_, signed, _) = try Self.curl(["-o", "/dev/null", "-H", "Authorization: OTAMesh-Sig keyid=x,sig=y", cache])
        #expect(signed == 401)
        let (_, _, after) = try Self.curl(["\(gateway.admin)/metrics"])
        #expect(after.contains(#"otamesh_admin_auth_failures_total{credential="signature"} 1"#), "\(after)")
    }
}
