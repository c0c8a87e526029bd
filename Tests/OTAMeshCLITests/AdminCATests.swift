import Foundation
import OTAMeshGateway
import Testing

@testable import otamesh

/// Which site CA the CLI verifies an https:// admin API against.
@Suite("admin API CA lookup")
struct AdminCATests {
    @Test("https only; --ca, then OTAMESH_ADMIN_CA, then DATA/keys/site-ca.pem when it exists; none: refused with where to get one")
    func order() throws {
        #expect(AdminCALookup.isHTTPS("https://10.0.0.2:8071") && AdminCALookup.isHTTPS("HTTPS://gw:8071"))
        #expect(!AdminCALookup.isHTTPS("http://127.0.0.1:8071"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let present = "\(dir)/site-ca.pem"
        try Data("x".utf8).write(to: URL(fileURLWithPath: present))
        let url = "https://10.0.0.2:8071"
        var loaded = false
        let fromFlag = try AdminCALookup.resolve(ca: "/flag.pem", environment: ["OTAMESH_ADMIN_CA": "/env.pem"], url: url) {
            loaded = true
            return present
        }
        #expect(fromFlag == "/flag.pem" && !loaded, "the configuration is not even loaded when --ca is given")
        #expect(try AdminCALookup.resolve(ca: nil, environment: ["OTAMESH_ADMIN_CA": "/env.pem"], url: url) { present } == "/env.pem")
        #expect(try AdminCALookup.resolve(ca: nil, environment: ["OTAMESH_ADMIN_CA": ""], url: url) { present } == present)
        let missing = #expect(throws: AdminCALookup.Missing.self) {
            try AdminCALookup.resolve(ca: nil, environment: [:], url: url) { "\(dir)/nope.pem" }
        }
        let text = missing?.description ?? ""
        for part in [url, "--ca FILE", "OTAMESH_ADMIN_CA", "otamesh keys site-ca --export-pem", "\(dir)/nope.pem"] {
            #expect(text.contains(part), "\(part) in \(text)")
        }
    }

    @Test("a CA file that cannot be used: its path and why, never a crash")
    func badFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let garbage = "\(dir)/garbage.pem"
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: garbage))
        for file in ["\(dir)/missing.pem", garbage, dir] {
            let error = #expect(throws: AdminTransportClient.BadCA.self) { try AdminTransportClient.verifying(caFile: file) }
            #expect(error?.description.hasPrefix("site CA certificate \(file): ") == true, "\(String(describing: error))")
        }
    }

    @Test("otamesh keys site-ca without --address names loopback and admin.listen's own address (not all interfaces)")
    func certificateAddresses() throws {
        var configuration = AgentConfiguration(nodeName: "gw-1")
        #expect(SiteCACommand.defaultAddresses(configuration) == ["127.0.0.1", "::1"])
        try configuration.set("admin.listen", "0.0.0.0:8071", source: "test")
        #expect(SiteCACommand.defaultAddresses(configuration) == ["127.0.0.1", "::1"])
        try configuration.set("admin.listen", "[::]:8071", source: "test")
        #expect(SiteCACommand.defaultAddresses(configuration) == ["127.0.0.1", "::1"])
        try configuration.set("admin.listen", "192.168.1.10:8071", source: "test")
        #expect(SiteCACommand.defaultAddresses(configuration) == ["127.0.0.1", "::1", "192.168.1.10"])
        try configuration.set("admin.listen", "gw-1.lan:8071", source: "test")
        #expect(SiteCACommand.defaultAddresses(configuration) == ["127.0.0.1", "::1"], "a name is no address")
    }
}
