import Foundation
import Testing

@testable import OTAMeshGateway

@Suite("admin API off loopback: clear text or TLS")
struct AdminTLSTests {
    func configuration(_ listen: String, tls: String? = nil, force: Bool = false) throws -> AgentConfiguration {
        var config = AgentConfiguration(nodeName: "gw-1")
        try config.set("admin.listen", listen, source: "test")
        if let tls { try config.set("admin.tls", tls, source: "test") }
        if force { try config.set("admin.insecureClearText", "true", source: "test") }
        return config
    }

    @Test("loopback addresses: 127/8, ::1, IPv4-mapped loopback, localhost; not all-interfaces, LAN addresses or other names")
    func loopback() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "localhost", "LOCALHOST"] {
            #expect(AgentConfiguration.isLoopback(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "fe80::1", "::ffff:10.0.0.1", "gateway.lan", "", "::2"] {
            #expect(!AgentConfiguration.isLoopback(host), "\(host)")
        }
    }

    @Test("auto: clear text on loopback, HTTPS elsewhere with a certificate, refused elsewhere without one unless forced")
    func autoMode() throws {
        #expect(try configuration("127.0.0.1:8071").adminTransport(hasCertificate: false) == .clearText)
        #expect(try configuration("127.0.0.1:8071").adminTransport(hasCertificate: true) == .clearText)
        #expect(try configuration("0.0.0.0:8071").adminTransport(hasCertificate: true) == .tls)
        #expect(try configuration("192.168.1.10:8071").adminTransport(hasCertificate: true) == .tls)
        #expect(try configuration("0.0.0.0:8071", force: true).adminTransport(hasCertificate: false) == .clearText)
        // A certificate wins over the force in auto: forcing only allows clear text, it does not ask for it.
        #expect(try configuration("0.0.0.0:8071", force: true).adminTransport(hasCertificate: true) == .tls)
        let refused = #expect(throws: AdminListenRefused.self) {
            try configuration("0.0.0.0:8081").adminTransport(hasCertificate: false, certificatePath: "/d/keys/gateway.pem")
        }
        let line = refused?.description ?? ""
        #expect(line.hasPrefix("admin.listen 0.0.0.0:8081: "), "\(line)")
        for fix in ["otamesh keys site-ca", "/d/keys/gateway.pem", "127.0.0.1", "--admin-insecure-clear-text"] {
            #expect(line.contains(fix), "\(fix) in \(line)")
        }
    }

    @Test("on: HTTPS wherever it listens, refused without a certificate; off: clear text, off loopback only when forced")
    func explicitModes() throws {
        #expect(try configuration("127.0.0.1:0", tls: "on").adminTransport(hasCertificate: true) == .tls)
        #expect(throws: AdminListenRefused.self) { try configuration("127.0.0.1:0", tls: "on").adminTransport(hasCertificate: false) }
        #expect(try configuration("127.0.0.1:0", tls: "off").adminTransport(hasCertificate: true) == .clearText)
        #expect(throws: AdminListenRefused.self) { try configuration("[::]:8071", tls: "off").adminTransport(hasCertificate: true) }
        #expect(try configuration("[::]:8071", tls: "off", force: true).adminTransport(hasCertificate: true) == .clearText)
    }

    @Test("admin.tls and admin.insecureClearText: file, environment, bad values name the key and change nothing")
    func keys() throws {
        var config = AgentConfiguration(nodeName: "gw-1")
        #expect(config.adminTLS == .auto && !config.adminInsecureClearText)
        try config.apply(yaml: "admin:\n  tls: on\n  insecureClearText: true\n", source: "otamesh.yaml")
        #expect(config.adminTLS == .on && config.adminInsecureClearText)
        try config.apply(environment: ["OTAMESH_ADMIN_TLS": "off", "OTAMESH_ADMIN_INSECURE_CLEAR_TEXT": "false"])
        #expect(config.adminTLS == .off && !config.adminInsecureClearText)
        let before = config
        #expect(throws: ConfigurationError.invalid(source: "--admin-tls", key: "admin.tls", reason: "expected auto, on or off, got yes-please")) {
            try config.set("admin.tls", "yes-please", source: "--admin-tls")
        }
        #expect(throws: ConfigurationError.self) { try config.set("admin.insecureClearText", "maybe", source: "x") }
        #expect(config == before)
        #expect(AgentConfiguration.keys.contains { $0.file == "admin.tls" && $0.flag == "--admin-tls" })
        #expect(AgentConfiguration.keys.contains { $0.file == "admin.insecureClearText" && $0.flag == "--admin-insecure-clear-text" })
    }

    @Test("the URL CLI commands fall back to: https when the admin API would speak TLS")
    func fallbackURL() throws {
        #expect(
            AdminAddress.url(try configuration("127.0.0.1:8071").adminListen, scheme: try configuration("127.0.0.1:8071").adminScheme)
                == "http://127.0.0.1:8071")
        let lan = try configuration("0.0.0.0:8071")
        #expect(AdminAddress.url(lan.adminListen, scheme: lan.adminScheme) == "https://127.0.0.1:8071")
        #expect(try configuration("[::1]:8071", tls: "on").adminScheme == "https")
    }

    @Test("the gateway certificate: the admin listener's TLS configuration, and which addresses and names it covers")
    func gatewayCertificate() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-admin-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ca = SiteCA(keysDirectory: "\(dir)/keys")
        #expect(!ca.hasGatewayCertificate)
        #expect(try ca.serverConfiguration() == nil)
        #expect(ca.gatewayCertificateCovers("127.0.0.1") == nil, "no certificate: unknown, not false")
        _ = try ca.ensure(names: ["gw-1.lan"], addresses: ["192.0.2.10", "::1"])
        #expect(ca.hasGatewayCertificate)
        #expect(try ca.serverConfiguration() != nil)
        #expect(ca.gatewayCertificateCovers("192.0.2.10") == true)
        #expect(ca.gatewayCertificateCovers("0:0:0:0:0:0:0:1") == true, "IPv6 compared as an address")
        #expect(ca.gatewayCertificateCovers("GW-1.lan") == true)
        #expect(ca.gatewayCertificateCovers("127.0.0.1") == false)
        #expect(ca.gatewayCertificateCovers("other.lan") == false)
        // A damaged certificate file stops the start with the file and why, never a crash.
        try Data("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: ca.gatewayCertPath))
        let failure = #expect(throws: SiteCA.Failure.self) { try ca.serverConfiguration() }
        #expect(failure?.file == ca.gatewayCertPath)
    }
}
