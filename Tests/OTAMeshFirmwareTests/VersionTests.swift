import Testing

@testable import OTAMeshFirmware

@Suite("versions")
struct VersionTests {
    @Test("semver precedence follows semver.org §11, including -dev.N prereleases")
    func semverOrder() throws {
        let chain = [
            "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0-dev", "2.1.0-dev.7", "2.1.0-dev.10", "2.1.0", "2.1.1", "10.0.0",
        ]
        let versions = try chain.map { try #require(SemanticVersion($0), "\($0)") }
        for (a, b) in zip(versions, versions.dropFirst()) {
            #expect(a < b, "\(a) < \(b)")
            #expect(!(b < a))
        }
        #expect(SemanticVersion("1.0.0+build.1") == SemanticVersion("1.0.0+build.2"))
        #expect(SemanticVersion("3.0.0-rc.1+build.42")?.build == ["build", "42"])
    }

    @Test("malformed semver is rejected", arguments: ["1.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "v1.0.0", "1.0.0-a..b", "1.-1.0", "", "1.0.0-é"])
    func semverRejects(text: String) {
        #expect(SemanticVersion(text) == nil)
    }

    @Test("ESP8266 FOTA rule parses and orders within a product type")
    func esp8266() throws {
        let v = try #require(ESP8266FOTAVersion("v1.0.2t45772(a)"))
        #expect(v.kind == .release && v.major == 1 && v.minor == 0 && v.revision == 2)
        #expect(v.productType == 45772 && v.upgrade == .all)
        #expect(ESP8266FOTAVersion("b1.0.3.t45772(o)")?.kind == .beta)
        #expect(ESP8266FOTAVersion("x1.0.2t45772(a)") == nil)
        #expect(ESP8266FOTAVersion("v1.0.2t45772(q)") == nil)
        #expect(ESP8266FOTAVersion("v1.0t45772(a)") == nil)
        let older = try #require(FirmwareVersion("v1.0.5t45772(a)"))
        let newer = try #require(FirmwareVersion("v1.1.0t45772(a)"))
        #expect(FirmwareVersion.compare(older, newer) == .ascending)
        #expect(older.isOlder(than: newer))
        let otherProduct = try #require(FirmwareVersion("v2.0.0t27388(a)"))
        #expect(FirmwareVersion.compare(older, otherProduct) == nil)
        #expect(FirmwareVersion.compare(try #require(FirmwareVersion("b1.0.5t45772(a)")), older) == .ascending)
    }

    @Test("scheme detection and the dotted fallback")
    func schemes() throws {
        #expect(FirmwareVersion("2.1.0-dev.7")?.scheme == "semver")
        #expect(FirmwareVersion("v1.0.2t45772(a)")?.scheme == "esp8266")
        #expect(FirmwareVersion("v5.3.1")?.scheme == "dotted")
        #expect(FirmwareVersion("1.2")?.scheme == "dotted")
        #expect(FirmwareVersion("release") == nil)
        let a = try #require(FirmwareVersion("1.2"))
        let b = try #require(FirmwareVersion("1.10"))
        #expect(FirmwareVersion.compare(a, b) == .ascending)
        #expect(FirmwareVersion.compare(try #require(FirmwareVersion("1.2")), try #require(FirmwareVersion("1.2.0"))) == .same)
        #expect(FirmwareVersion.compare(try #require(FirmwareVersion("1.2.0-dev.3")), try #require(FirmwareVersion("1.2"))) == .ascending)
        #expect(FirmwareVersion.compare(try #require(FirmwareVersion("1.2-a")), try #require(FirmwareVersion("1.2-b"))) == nil)
        #expect(FirmwareVersion.compare(try #require(FirmwareVersion("2.0.0")), try #require(FirmwareVersion("v1.0.2t45772(a)"))) == nil)
    }

    @Test("variant compatibility strips -eth… from both sides")
    func variants() {
        #expect(VariantCompatibility.isCompatible(device: "esp32", firmware: "esp32-eth"))
        #expect(VariantCompatibility.isCompatible(device: "esp32-eth-wifi", firmware: "esp32"))
        #expect(VariantCompatibility.isCompatible(device: "esp32s3-n16r8", firmware: "esp32s3-n16r8"))
        #expect(!VariantCompatibility.isCompatible(device: "esp32s3-n16r8", firmware: "esp32s3"))
        #expect(!VariantCompatibility.isCompatible(device: "esp32", firmware: "esp32-16mb"))
        #expect(VariantCompatibility.identity("desktop-macos-arm64") == "desktop-macos-arm64")
    }
}
