import Foundation
import OTAMeshTestSupport
import OTAMeshTrust
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One credential for the whole site: two real agents sharing a site keyring and site trust; an
/// admin with a site admin key and no token of either gateway.
@Suite("site admin key for the admin API", .serialized)
struct SiteAuthTests {
    final class Site {
        let dir: TemporaryDirectory
        let gw1: Gateway
        let gw2: Gateway
        let keys: String
        /// Admin A alone signs for the site; the rogue's key is well formed but not the site's.
        let signing: SignedSite

        init() throws {
            dir = try TemporaryDirectory()
            keys = dir.file("admins")
            // A trusted root: without one a gateway takes no part in rollouts.
            let release = try PublishedRelease(in: dir, images: [])
            try writeSiteKeyring(to: dir.file("site.keyring"), site: "auth-site")
            signing = try SignedSite(site: "auth-site", admins: ["admin-a"], threshold: 1, outsiders: ["rogue"])
            try signing.writeKeys(to: keys)
            try signing.writeTrustFile(to: dir.file("site-trust.json"))
            let common = [
                "--site-keyring", dir.file("site.keyring"), "--site-trust", dir.file("site-trust.json"),
                "--trust-root", release.root,
            ]
            gw1 = try Gateway.start(data: dir.file("d1"), extra: ["--node-name", "gw1"] + common)
            gw2 = try Gateway.start(data: dir.file("d2"), extra: ["--node-name", "gw2", "--join", gw1.gossip!] + common)
        }

        deinit {
            gw1.stop()
            gw2.stop()
        }

        func signer(_ name: String) -> TUFSigner { signing.key(name) }
    }

    static func request(_ method: String, _ url: String, authorization: String?, body: Data? = nil) async throws -> (Int, String, String?) {
        try await AgentTests.request(method, url, authorization: authorization, body: body)
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    @Test("the CLI with a site admin key and no token: accepted by either gateway; a key outside the site trust gets 401 with why")
    func cliWithKey() throws {
        let site = try Site()
        let nowhere = site.dir.file("no-data-here")
        for gateway in [site.gw2, site.gw1] {
            let (status, out, err) = try run(["members", "--admin", gateway.admin, "--key", "\(site.keys)/admin-a.pem", "--data-dir", nowhere, "--json"])
            #expect(status == 0, "\(out) \(err)")
            #expect(out.contains("\"site\":\"auth-site\""), "\(out)")
        }
        // The same key from the environment, as rollout commands take it.
        let (fromEnvironment, envOut, envErr) = try run(
            ["members", "--admin", site.gw2.admin, "--data-dir", nowhere],
            environment: ["OTAMESH_ADMIN_KEY_FILE": "\(site.keys)/admin-a.pem"])
        #expect(fromEnvironment == 0, "\(envOut) \(envErr)")
        // Rollout commands: their --key signs the command and, with no token, each request too.
        let (listed, listOut, listErr) = try run(
            ["rollout", "list", "--admin", site.gw2.admin, "--data-dir", nowhere],
            environment: ["OTAMESH_ADMIN_KEY_FILE": "\(site.keys)/admin-a.pem"])
        #expect(listed == 0, "\(listOut) \(listErr)")
        let (status, statusOut, statusErr) = try run([
            "rollout", "status", "--admin", site.gw1.admin, "--key", "\(site.keys)/admin-a.pem",
            "--data-dir", nowhere,
        ])
        #expect(status == 0, "rollout status takes --key too: \(statusOut) \(statusErr)")
        let (_, startOut, startErr) = try run([
            "rollout", "start", "--target", "esp32/app/9.9.9.bin", "--select", "hardware=esp32", "--stages", "100",
            "--admin", site.gw2.admin, "--key", "\(site.keys)/admin-a.pem", "--data-dir", nowhere,
        ])
        #expect(
            !startErr.contains("401") && !startErr.contains("no admin API token") && startErr.contains("9.9.9"),
            "authenticated by the key; refused only for its unknown target: \(startOut) \(startErr)")
        let (rogue, _, rogueErr) = try run(["members", "--admin", site.gw2.admin, "--key", "\(site.keys)/rogue.pem", "--data-dir", nowhere])
        #expect(rogue == 1 && rogueErr.contains("HTTP 401") && rogueErr.contains("is not an admin key of site auth-site"), "\(rogueErr)")
        #expect(!FileManager.default.fileExists(atPath: nowhere), "a client command creates no data directory")
    }

    @Test("the CLI finds the agent of --data-dir by DATA/admin.url; no gateway at an address says so")
    func address() throws {
        let site = try Site()
        let (status, out, err) = try run(["members", "--data-dir", site.dir.file("d2"), "--json"])
        #expect(status == 0 && out.contains("\"node\":\"gw2\""), "\(out) \(err)")
        // A stopped gateway: its port answers no more.
        let stopped = try Gateway.start(data: site.dir.file("d3"), extra: ["--gossip-listen", "off"])
        // A gateway without site trust takes its token only, and says why.
        let (untrusting, _, untrustingErr) = try run(["members", "--admin", stopped.admin, "--key", "\(site.keys)/admin-a.pem"])
        #expect(untrusting == 1 && untrustingErr.contains("HTTP 401") && untrustingErr.contains("loaded no site trust"), "\(untrustingErr)")
        stopped.stop()
        let (down, _, downErr) = try run(["members", "--admin", stopped.admin, "--key", "\(site.keys)/admin-a.pem"])
        #expect(down == 1 && downErr.contains("no gateway answers at \(stopped.admin): is it running? (--admin URL)"), "\(downErr)")
        let (dataDown, _, dataDownErr) = try run(["members", "--data-dir", site.dir.file("d3")])
        #expect(dataDown == 1 && dataDownErr.contains("no gateway answers at \(stopped.admin): is it running?"), "\(dataDownErr)")
    }

    @Test("signed requests: stale, replayed, for another path, with a tampered body, or unsigned → 401 with the reason; a fresh one is admin")
    func refusals() async throws {
        let site = try Site()
        let admin = site.signer("admin-a")
        let url = site.gw2.admin
        func header(_ method: String, _ target: String, body: String = "", time: Int64 = Self.now) throws -> String {
            try SignedRequest.sign(with: admin, method: method, target: target, body: Array(body.utf8), time: time, nonce: SignedRequest.nonce()).header
        }
        // Accepted: a read and a write (the admin role), each signed once.
        #expect(try await Self.request("GET", "\(url)/api/v1/members", authorization: try header("GET", "/api/v1/members")).0 == 200)
        let write = try await Self.request(
            "POST", "\(url)/api/v1/records/signed-put", authorization: try header("POST", "/api/v1/records/signed-put", body: "v1"),
            body: Data("v1".utf8))
        #expect(write.0 == 200, "\(write.1)")

        let stale = try await Self.request("GET", "\(url)/api/v1/members", authorization: try header("GET", "/api/v1/members", time: Self.now - 600))
        #expect(stale.0 == 401 && stale.1.contains("more than 300 s off") && stale.2 == "OTAMesh-Sig", "\(stale)")
        let once = try header("GET", "/api/v1/members")
        #expect(try await Self.request("GET", "\(url)/api/v1/members", authorization: once).0 == 200)
        let replay = try await Self.request("GET", "\(url)/api/v1/members", authorization: once)
        #expect(replay.0 == 401 && replay.1.contains("replay"), "\(replay)")
        let elsewhere = try await Self.request("GET", "\(url)/api/v1/cache", authorization: try header("GET", "/api/v1/members"))
        #expect(elsewhere.0 == 401 && elsewhere.1.contains("does not match this request"), "\(elsewhere)")
        let tampered = try await Self.request(
            "POST", "\(url)/api/v1/records/signed-put", authorization: try header("POST", "/api/v1/records/signed-put", body: "v2"),
            body: Data("v3".utf8))
        #expect(tampered.0 == 401 && tampered.1.contains("the body is not the one signed"), "\(tampered)")
        let rogue = try SignedRequest.sign(
            with: site.signer("rogue"), method: "GET", target: "/api/v1/members", body: [], time: Self.now,
            nonce: SignedRequest.nonce()
        ).header
        let foreign = try await Self.request("GET", "\(url)/api/v1/members", authorization: rogue)
        #expect(foreign.0 == 401 && foreign.1.contains("is not an admin key of site auth-site"), "\(foreign)")
        let garbled = try await Self.request("GET", "\(url)/api/v1/members", authorization: "OTAMesh-Sig keyid=zz")
        #expect(garbled.0 == 401 && garbled.1.contains("malformed"), "\(garbled)")
        let unsigned = try await Self.request("GET", "\(url)/api/v1/members", authorization: nil)
        #expect(unsigned.0 == 401 && unsigned.1.contains("site admin signature"), "\(unsigned)")
        // The tampered write changed nothing: the record still holds what was signed.
        let records = try await Self.request("GET", "\(url)/api/v1/records", authorization: "Bearer \(site.gw2.readToken)")
        #expect(records.1.contains("\"value\":\"v1\""), "\(records.1)")
    }
}
