import Foundation
import Testing

/// Every emulated device family updates end to end against a real agent — over HTTPS where the
/// family uses it — also when faults hit the download.
@Suite("device fleets", .serialized)
struct DeviceFleetTests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures").path
    static let gatewayToken = "fleet-site-gateway-token"

    /// One gateway for all families: an ESP32 app 2.0.0, an ESP8266 sketch 2.0.0 and a NONOS
    /// FOTA user1/user2 pair v1.0.3, released, imported, with a site CA.
    final class Site {
        let dir: TemporaryDirectory
        let data: String
        let gateway: Gateway
        let ca: String

        init() throws {
            dir = try TemporaryDirectory()
            data = dir.file("data")
            let fixtures = DeviceFleetTests.fixtures
            _ = try PublishedRelease(
                in: dir,
                images: [
                    try PublishedRelease.Image.esp32("esp32/fleet/2.0.0.bin", version: "2.0.0", size: 150000, file: dir.file("esp32-2.0.0.bin")),
                    PublishedRelease.Image(path: "esp8266/sketch/2.0.0.bin", file: "\(fixtures)/esp/esp8266-v1-0x00000.bin", version: "2.0.0"),
                    PublishedRelease.Image(
                        path: "esp8266/fota/v1.0.3/user1.bin", file: "\(fixtures)/esp/esp8266-v2-user1.bin", version: "v1.0.3t45772(a)"),
                    PublishedRelease.Image(
                        path: "esp8266/fota/v1.0.3/user2.bin", file: "\(fixtures)/esp/esp8266-v2-user2.bin", version: "v1.0.3t45772(a)"),
                ], importingInto: [data])
            let siteCA = ["keys", "site-ca", "--data-dir", data]
            let (status, out, err) = try run(siteCA)
            #expect(status == 0, "\(siteCA): \(out) \(err)")
            ca = dir.file("ca.pem")
            try run(["keys", "site-ca", "--data-dir", data, "--export-pem"]).1.write(toFile: ca, atomically: true, encoding: .utf8)
            // DDI devices present the site's GatewayToken.
            let token = dir.file("gateway-token")
            try DeviceFleetTests.gatewayToken.write(toFile: token, atomically: true, encoding: .utf8)
            chmod(token, 0o600)
            gateway = try Gateway.start(data: data, extra: ["--ddi-gateway-token-file", token])
        }

        deinit { gateway.stop() }

        /// Assigns `target` to the `count` devices of a fleet whose first MAC is `base` (xx:xx:xx:xx:xx:00).
        func assign(base: String, count: Int, target: String) throws {
            let prefix = base.dropLast(2)
            let ids = (0..<count).map { prefix + String(format: "%02x", $0) }.joined(separator: ",")
            let (status, _, err) = try run(["device", "assign", "--data-dir", data, ids, target])
            #expect(status == 0, "\(err)")
        }

        /// Runs a fleet until every device updated and was then told "no update"; returns the summary.
        func fleet(_ family: String, base: String, count: Int = 3, version: String, extra: [String] = []) throws -> [String: Any] {
            let args =
                [
                    "run", "--family", family, "--count", "\(count)", "--mac-base", base, "--version", version,
                    "--gateway", gateway.device, "--tls-gateway", gateway.tls ?? "", "--ca", ca,
                    "--interval", "0.2", "--until-updated", "--deadline", "60", "--timeout", "2", "--quiet",
                ] + extra
            let (status, out, err) = try runProgram(Binaries.devicesim, args, timeout: 90)
            let summary =
                out.split(separator: "\n").compactMap { line -> [String: Any]? in
                    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                        object["summary"] as? Bool == true
                    else { return nil }
                    return object
                }.last ?? [:]
            #expect(status == 0, "\(family) \(extra): \(out.suffix(3000)) \(err.suffix(2000))")
            #expect(summary["updated"] as? Int == count, "\(family) \(extra): \(summary)")
            return summary
        }

        func devices() throws -> [[String: Any]] {
            try run(["devices", "--data-dir", data, "--json"]).1.split(separator: "\n").compactMap {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
    }

    @Test("every family updates end to end: httpUpdate (ESP8266, ESP32), esp_https_ota over HTTPS, NONOS FOTA, WiPhone, generic, hawkBit DDI")
    func everyFamily() throws {
        let site = try Site()
        let families: [(family: String, base: String, target: String, version: String, extra: [String], newVersion: String)] = [
            ("esp8266-httpupdate", "5c:cf:7f:01:00:00", "esp8266/sketch/2.0.0.bin", "1.0.0", ["--new-version", "2.0.0"], "2.0.0"),
            ("esp32-httpupdate", "24:0a:c4:02:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", [], "2.0.0"),
            ("esp-https-ota", "24:0a:c4:03:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", ["--max-request-size", "32768"], "2.0.0"),
            (
                "esp8266-fota", "5c:cf:7f:04:00:00", "esp8266/fota/v1.0.3/user1.bin", "v1.0.2t45772(a)",
                ["--new-version", "v1.0.3t45772(a)", "--fota-slot", "mixed"], "v1.0.3t45772(a)"
            ),
            ("wiphone", "24:0a:c4:05:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", [], "2.0.0"),
            ("generic", "24:0a:c4:06:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", ["--hardware", "esp32"], "2.0.0"),
            ("ddi", "02:00:00:07:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", ["--hardware", "esp32", "--gateway-token", Self.gatewayToken], "2.0.0"),
        ]
        for f in families {
            try site.assign(base: f.base, count: 3, target: f.target)
            _ = try site.fleet(f.family, base: f.base, version: f.version, extra: f.extra)
        }
        // The registry saw every device come back with the new version and be told it is up to
        // date — except WiPhones, which never say what they run (the phone compares versions).
        var devices: [[String: Any]] = []
        let settled = waitUntil(timeout: 10) {
            devices = (try? site.devices()) ?? []
            return devices.count == 21
                && devices.allSatisfy {
                    let answer = $0["lastAnswer"] as? String ?? ""
                    return $0["family"] as? String == "wiphone" ? answer.contains("version 2.0.0 (the phone compares)") : answer.hasPrefix("up to date")
                }
        }
        #expect(settled, "\(devices)")
        let families8266 = devices.filter { ($0["family"] as? String) == "esp8266-fota" }
        #expect(families8266.count == 3 && families8266.allSatisfy { $0["version"] as? String == "v1.0.3t45772(a)" })
    }

    @Test("faults: drops, power loss (resumed where the firmware can), a corrupt flash write and a stall all end updated")
    func faults() throws {
        let site = try Site()
        let runs: [(family: String, base: String, target: String, version: String, extra: [String])] = [
            (
                "esp-https-ota", "24:0a:c4:11:00:00", "esp32/fleet/2.0.0.bin", "1.0.0",
                ["--max-request-size", "32768", "--ota-resumption", "--power-loss-at-byte", "70000"]
            ),
            ("esp32-httpupdate", "24:0a:c4:12:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", ["--drops", "2", "--seed", "5"]),
            ("generic", "24:0a:c4:13:00:00", "esp32/fleet/2.0.0.bin", "1.0.0", ["--corrupt-flash", "--hardware", "esp32"]),
            // SWUpdate resumes a cut download with Range.
            (
                "ddi", "02:00:00:16:00:00", "esp32/fleet/2.0.0.bin", "1.0.0",
                ["--drops", "2", "--seed", "5", "--hardware", "esp32", "--gateway-token", Self.gatewayToken]
            ),
            (
                "esp8266-fota", "5c:cf:7f:14:00:00", "esp8266/fota/v1.0.3/user1.bin", "v1.0.2t45772(a)",
                ["--new-version", "v1.0.3t45772(a)", "--power-loss-at-byte", "100"]
            ),
            (
                "esp8266-httpupdate", "5c:cf:7f:15:00:00", "esp8266/sketch/2.0.0.bin", "1.0.0",
                ["--new-version", "2.0.0", "--stall-at-byte", "50", "--stall-seconds", "3"]
            ),
        ]
        for r in runs {
            try site.assign(base: r.base, count: 2, target: r.target)
            let summary = try site.fleet(r.family, base: r.base, count: 2, version: r.version, extra: r.extra)
            #expect((summary["requests"] as? Int ?? 0) > 2 * 2, "\(r.family): \(summary)")
        }
    }

    @Test("devicesim's firmware rules (compVersions, NanoIni, Range plans) match the sources")
    func selfTest() throws {
        let (status, out, err) = try runProgram(Binaries.devicesim, ["self-test"])
        #expect(status == 0, "\(out) \(err)")
    }

    @Test("two fleets run at once without --mac-base never share a device id at the gateway")
    func distinctDefaultMACs() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }
        let args = ["run", "--family", "esp32-httpupdate", "--count", "3", "--gateway", gateway.device, "--polls", "1", "--timeout", "2", "--burst"]
        let fleets = try (0..<2).map { _ in try Child(Binaries.devicesim, args) }
        for fleet in fleets { #expect(fleet.wait(timeout: 60) >= 0) }
        var ids: Set<String> = []
        #expect(
            waitUntil(timeout: 10) {
                ids = Set(
                    ((try? run(["devices", "--data-dir", data, "--json"]).1) ?? "").split(separator: "\n").compactMap {
                        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["id"] as? String
                    })
                return ids.count == 6
            }, "\(ids)")
    }
}
