import Foundation
import Testing

/// Apps with their configuration (issue 20), as an admin runs them: a signed catalog, per-device
/// settings with a password, httpUpdate filesystem mode against devicesim (SPIFFS and LittleFS),
/// the password withheld from another address, a serial image equal to esptool merge-bin's, and
/// the password nowhere but the secret store and the images.
@Suite("apps with their configuration", .serialized)
struct AppConfigurationTests {
    static let password = "hunter2-\(UUID().uuidString.prefix(8))"

    static var esptoolMissing: Bool {
        ((try? runProgram("/usr/bin/env", ["python3", "-m", "esptool", "version"], timeout: 60))?.0 ?? 1) != 0
    }

    /// Runs `otamesh` and expects success.
    @discardableResult
    static func ok(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let (status, out, err) = try run(arguments, environment: environment)
        #expect(status == 0, "\(arguments): \(out) \(err)")
        return out + err
    }

    /// One devicesim run of an httpUpdate family with a filesystem: its output lines.
    static func devices(_ family: String, mac: String, version: String, filesystem: String, gateway: Gateway, deadline: Int) throws -> [String] {
        let (_, out, err) = try runProgram(
            Binaries.devicesim,
            [
                "run", "--family", family, "--count", "1", "--mac-base", mac, "--version", version, "--gateway", gateway.device, "--filesystem", filesystem,
                "--secret-key", "password", "--until-updated", "--target-version", version, "--interval", "0.3", "--deadline", "\(deadline)", "--quiet",
            ], timeout: Double(deadline) + 30)
        return (out + err).split(separator: "\n").map(String.init)
    }

    /// The release of both tests: an esp32 app `weather-station@2.1.0` (SPIFFS, a password) and
    /// an esp8266 app `lite@1.0.0` (LittleFS, key=value), imported into `data`.
    static func publish(in dir: TemporaryDirectory, into data: [String]) throws -> (firmware: String, spiffs: String) {
        let repo = dir.file("repo")
        let firmware = dir.file("weather-2.1.0.bin")
        let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", "2.1.0", "--size", "30000", "-o", firmware])
        #expect(made.0 == 0, "\(made.2)")
        let esp8266 = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/esp/esp8266-v1-0x00000.bin").path
        try Self.ok(["release", "init", "--repo", repo])
        try Self.ok(["release", "add", "--repo", repo, "--path", "esp32/weather/2.1.0.bin", firmware])
        try Self.ok(["release", "add", "--repo", repo, "--path", "esp8266/lite/1.0.0.bin", "--version", "1.0.0", "--hardware", "esp8266", esp8266])
        let spiffs = """
            name: weather-station
            description: Weather station
            firmware: esp32/weather/2.1.0.bin
            filesystem: {type: spiffs, offset: "0x290000", size: "0x20000", page-size: 256, block-size: 4096, meta-len: 4}
            properties:
              - {prop: ssid, label: WiFi SSID, type: text, required: true}
              - {prop: password, label: WiFi password, type: password}
              - {prop: volume, type: number, min: 0, max: 21, default: 4}
            """
        let littlefs = """
            name: lite
            firmware: esp8266/lite/1.0.0.bin
            config: {path: /settings.txt, format: key-value}
            filesystem: {type: littlefs, offset: "0x300000", size: "0x10000", block-size: 4096, name-max: 32}
            properties:
              - {prop: room, type: select, choices: [lobby, lab], default: lobby}
            """
        try spiffs.write(toFile: dir.file("weather.yaml"), atomically: true, encoding: .utf8)
        try littlefs.write(toFile: dir.file("lite.yaml"), atomically: true, encoding: .utf8)
        try Self.ok(["release", "add-app", "--repo", repo, dir.file("weather.yaml")])
        try Self.ok(["release", "add-app", "--repo", repo, dir.file("lite.yaml")])
        try Self.ok(["release", "publish", "--repo", repo, dir.file("pub")])
        try Self.ok(["export", "--published", dir.file("pub"), dir.file("b.tar")])
        for directory in data { try Self.ok(["import", "--data-dir", directory, "--root", dir.file("pub/metadata/1.root.json"), dir.file("b.tar")]) }
        return (firmware, spiffs)
    }

    @Test("settings set at one gateway configure the device at another (gossip); a password stays where it was set, and the other gateway says so")
    func settingsTravel() throws {
        let dir = try TemporaryDirectory()
        let data = [dir.file("d1"), dir.file("d2")]
        _ = try Self.publish(in: dir, into: data)
        try writeSiteKeyring(to: dir.file("site.keyring"), site: "apps-site")
        let gw1 = try Gateway.start(data: data[0], extra: ["--node-name", "gw1", "--site-keyring", dir.file("site.keyring")])
        defer { gw1.stop() }
        let gw2 = try Gateway.start(data: data[1], extra: ["--node-name", "gw2", "--site-keyring", dir.file("site.keyring"), "--join", gw1.gossip!])
        defer { gw2.stop() }
        let lite = "5c:cf:7f:00:30:01"
        try Self.ok(["device", "config", "set", "--data-dir", data[0], "--app", "lite@1.0.0", lite, "room=lab"])
        let lines = try Self.devices(
            "esp8266-httpupdate", mac: lite, version: "1.0.0", filesystem: "littlefs:size=0x10000,block-size=4096,name-max=32,config=/settings.txt",
            gateway: gw2,
            deadline: 30)
        #expect(lines.contains { $0.contains("\"event\":\"configured\"") && $0.contains("\"setting.room\":\"lab\"") }, "\(lines.suffix(5))")

        let weather = "24:0a:c4:00:30:02"
        try Self.ok(
            [
                "device", "config", "set", "--data-dir", data[0], "--app", "weather-station@2.1.0", "--address", "127.0.0.1", weather, "ssid=lab",
                "password=@env:WIFI_PW",
            ],
            environment: ["WIFI_PW": Self.password])
        var answer = ""
        let told = waitUntil(timeout: 30) {
            _ = try? Self.devices("esp32-httpupdate", mac: weather, version: "2.1.0", filesystem: "spiffs:size=0x20000,meta-len=4", gateway: gw2, deadline: 1)
            answer = (try? run(["devices", "--data-dir", data[1]]))?.1 ?? ""
            return answer.contains("its password stays there")
        }
        #expect(told, "gw2's answer to the device: \(answer)")
        // Set there too, the password configures the device at gw2.
        try Self.ok(["device", "config", "set", "--data-dir", data[1], weather, "password=@env:WIFI_PW"], environment: ["WIFI_PW": Self.password])
        let configured = try Self.devices(
            "esp32-httpupdate", mac: weather, version: "2.1.0", filesystem: "spiffs:size=0x20000,meta-len=4", gateway: gw2, deadline: 20)
        #expect(configured.contains { $0.contains("\"configured\"") && $0.contains("\"setting.ssid\":\"lab\"") }, "\(configured.suffix(5))")
    }

    /// An ArduinoOTA twin with a SPIFFS filesystem (its `password` setting reported only as
    /// set), added to `data` as push device `ota-1`.
    static func arduinoTwin(version: String, addedTo data: String, extra: [String] = []) throws -> PushTwin {
        let twin = try PushTwin.start(
            family: "arduino-ota",
            [
                "--version", version, "--variant", "esp32", "--filesystem", "spiffs:size=0x20000,meta-len=4", "--secret-key", "password", "--reboot-ms", "300",
                "--duration", "120",
            ])
        let httpPort = String(twin.http?.split(separator: ":").last ?? "80")
        do {
            try Self.ok(
                [
                    "device", "add", "--data-dir", data, "--id", "ota-1", "--family", "arduino-ota", "--address", twin.address, "--variant", "esp32",
                    "--version", version, "--option", "version_port=\(httpPort)",
                ] + extra)
        } catch {
            twin.stop()
            throw error
        }
        return twin
    }

    @Test("an ArduinoOTA device takes its configuration with the filesystem command (100): the twin mounts it and reports its config-id; no settings, no push")
    func arduinoOTAFilesystem() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        _ = try Self.publish(in: dir, into: [data])
        let twin = try Self.arduinoTwin(version: "2.1.0", addedTo: data)
        defer { twin.stop() }
        let none = try run(["device", "config", "push", "--data-dir", data, "ota-1"])
        #expect(none.0 == 1 && none.2.contains("has no app settings"), "\(none)")
        try Self.ok(
            ["device", "config", "set", "--data-dir", data, "--app", "weather-station@2.1.0", "ota-1", "ssid=ota-net", "password=@env:WIFI_PW"],
            environment: ["WIFI_PW": Self.password])
        let pushed = try Self.ok(["device", "config", "push", "--data-dir", data, "--deadline", "60", "ota-1"])
        #expect(pushed.contains("ota-1: configured cfg-"), "\(pushed)")
        #expect(twin.child.stdout.lines.contains { $0.contains("\"invitation\"") && $0.contains("\"command\":\"100\"") }, "\(twin.child.stdout.text)")
        let configured = twin.child.stdout.lines.first { $0.contains("\"configured\"") } ?? ""
        #expect(configured.contains("\"setting.ssid\":\"ota-net\"") && configured.contains("\"setting.password\":\"set ("), "\(configured)")
        #expect(!pushed.contains(Self.password))
    }

    @Test(
        "a configuration rollout pushes to an ArduinoOTA device: its firmware (command 0), then its configuration for the new version (command 100); it succeeds only after both"
    )
    func arduinoOTAConfigurationRollout() throws {
        let dir = try TemporaryDirectory()
        let (data, keys) = (dir.file("d"), dir.file("admins"))
        _ = try Self.publish(in: dir, into: [data])
        let signing = try SignedSite(site: "apps-site", admins: ["admin-a"], threshold: 1)
        try signing.writeKeys(to: keys)
        try signing.writeTrustFile(to: dir.file("site-trust.json"))
        let twin = try Self.arduinoTwin(version: "2.0.0", addedTo: data, extra: ["--tags", "roof"])
        defer { twin.stop() }
        try Self.ok(
            ["device", "config", "set", "--data-dir", data, "--app", "weather-station@2.1.0", "ota-1", "ssid=roof-net", "password=@env:WIFI_PW"],
            environment: ["WIFI_PW": Self.password])
        let gateway = try Gateway.start(data: data, extra: ["--node-name", "gw1", "--site-trust", dir.file("site-trust.json")])
        defer { gateway.stop() }
        let (started, out, err) = try run(
            [
                "rollout", "start", "--target", "esp32/weather/2.1.0.bin", "--configuration", "--select", "tag=roof", "--stages", "100", "--soak", "1s",
                "--max-failures", "0", "--min-finished", "1", "--admin", gateway.admin, "--key", "\(keys)/admin-a.pem",
            ] + gateway.tokenArguments, timeout: 30)
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(RolloutTests.Site.id(in: out), "no rollout id in: \(out)")
        var status = ""
        let completed = waitUntil(timeout: 90) {
            status = (try? run(["rollout", "status", id, "--devices", "--admin", gateway.admin] + gateway.tokenArguments))?.1 ?? ""
            return status.contains("completed") || status.contains("halted")
        }
        #expect(completed && status.contains("completed") && status.contains("2.1.0, configured"), "\(status)")
        // The twin took the firmware first, then the filesystem, and mounted this device's settings.
        let lines = twin.child.stdout.lines
        let invitations = lines.filter { $0.contains("\"invitation\"") }
        #expect(invitations.count == 2 && invitations[0].contains("\"command\":\"0\"") && invitations[1].contains("\"command\":\"100\""), "\(invitations)")
        let configured = lines.first { $0.contains("\"configured\"") } ?? ""
        #expect(configured.contains("\"setting.ssid\":\"roof-net\"") && configured.contains("\"setting.password\":\"set ("), "\(twin.child.stdout.text)")
        var listed = ""
        let answered = waitUntil(timeout: 15) {
            listed = (try? run(["devices", "--data-dir", data]))?.1 ?? ""
            return listed.contains("rollout \(id): succeeded: 2.1.0, configured")
        }
        #expect(answered, "\(listed)")
        #expect(!listed.contains(Self.password) && !status.contains(Self.password))
    }

    @Test("a configuration rollout: devices take the app's new firmware, then their configuration for it, and only then count as succeeded")
    func configurationRollout() throws {
        let dir = try TemporaryDirectory()
        let (repo, data, keys) = (dir.file("repo"), dir.file("d"), dir.file("admins"))
        try Self.ok(["release", "init", "--repo", repo])
        for version in ["2.0.0", "2.1.0"] {
            let firmware = dir.file("weather-\(version).bin")
            let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", version, "--size", "30000", "-o", firmware])
            #expect(made.0 == 0, "\(made.2)")
            try Self.ok(["release", "add", "--repo", repo, "--path", "esp32/weather/\(version).bin", firmware])
            let spec = """
                name: weather-station
                firmware: esp32/weather/\(version).bin
                filesystem: {type: spiffs, offset: "0x290000", size: "0x20000", meta-len: 4}
                properties:
                  - {prop: ssid, type: text, required: true}
                  - {prop: interval, type: number, default: \(version == "2.0.0" ? 60 : 30)}
                """
            try spec.write(toFile: dir.file("app-\(version).yaml"), atomically: true, encoding: .utf8)
            try Self.ok(["release", "add-app", "--repo", repo, dir.file("app-\(version).yaml")])
        }
        try Self.ok(["release", "publish", "--repo", repo, dir.file("pub")])
        try Self.ok(["export", "--published", dir.file("pub"), dir.file("b.tar")])
        try Self.ok(["import", "--data-dir", data, "--root", dir.file("pub/metadata/1.root.json"), dir.file("b.tar")])
        let signing = try SignedSite(site: "apps-site", admins: ["admin-a"], threshold: 1)
        try signing.writeKeys(to: keys)
        try signing.writeTrustFile(to: dir.file("site-trust.json"))
        let gateway = try Gateway.start(data: data, extra: ["--node-name", "gw1", "--site-trust", dir.file("site-trust.json")])
        defer { gateway.stop() }

        let devices = ["24:0a:c4:00:40:00", "24:0a:c4:00:40:01", "24:0a:c4:00:40:02"]
        for device in devices { try Self.ok(["device", "config", "set", "--data-dir", data, "--app", "weather-station@2.0.0", device, "ssid=lab"]) }
        // One fleet for the whole story: the devices keep their firmware and filesystem throughout.
        let fleet = try Child(
            Binaries.devicesim,
            [
                "run", "--family", "esp32-httpupdate", "--count", "3", "--mac-base", devices[0], "--version", "2.0.0", "--gateway", gateway.device,
                "--filesystem", "spiffs:size=0x20000,meta-len=4", "--interval", "0.3", "--deadline", "240", "--quiet",
            ])
        defer {
            fleet.signal(SIGTERM)
            fleet.wait(timeout: 10)
        }
        /// Devices whose newest `configured` event read this interval.
        func configured(interval: String) -> Set<String> {
            var newest: [String: String] = [:]
            for line in fleet.stdout.lines where line.contains("\"event\":\"configured\"") {
                guard let device = devices.first(where: { line.contains("\"device\":\"\($0)\"") }) else { continue }
                newest[device] = line
            }
            return Set(newest.filter { $0.value.contains("\"setting.interval\":\"\(interval)\"") }.keys)
        }
        func start() throws -> String {
            let (status, out, err) = try run(
                [
                    "rollout", "start", "--target", "esp32/weather/2.1.0.bin", "--configuration", "--select", "hardware=esp32", "--stages", "100",
                    "--soak", "1s", "--max-failures", "0", "--min-finished", "1", "--concurrency", "3", "--admin", gateway.admin, "--key",
                    "\(keys)/admin-a.pem",
                ] + gateway.tokenArguments, timeout: 30)
            #expect(status == 0 && out.contains("with each device's configuration"), "\(out) \(err)")
            return try #require(RolloutTests.Site.id(in: out), "no rollout id in: \(out)")
        }
        func completed(_ id: String) -> (Bool, String) {
            var status = ""
            let done = waitUntil(timeout: 30) {
                status = (try? run(["rollout", "status", id, "--devices", "--admin", gateway.admin] + gateway.tokenArguments))?.1 ?? ""
                return status.contains("completed") && status.components(separatedBy: "2.1.0, configured").count - 1 == 3
            }
            return (done, status)
        }

        // Before any rollout: each device asks, and takes its configuration for the app it runs.
        #expect(waitUntil(timeout: 30) { configured(interval: "60").count == 3 }, "\(fleet.stdout.text)")

        // The devices install 2.1.0, then take their configuration for 2.1.0 (its new default).
        let first = try start()
        #expect(waitUntil(timeout: 60) { configured(interval: "30").count == 3 }, "\(fleet.stdout.text)")
        #expect(fleet.stdout.lines.filter { $0.contains("\"event\":\"updated\"") }.count == 3, "\(fleet.stdout.text)")
        let (firstDone, firstStatus) = completed(first)
        #expect(firstDone, "\(firstStatus)")

        // A settings change alone: the devices the completed rollout configured keep what they
        // have (their filesystem checks are held, with the reason) until a configuration rollout
        // delivers it.
        for device in devices { try Self.ok(["device", "config", "set", "--data-dir", data, device, "interval=15"]) }
        var listing = ""
        let held = waitUntil(timeout: 30) {
            listing = (try? run(["devices", "--data-dir", data, "--json"]))?.1 ?? ""
            return listing.components(separatedBy: "settings changed since rollout \(first)").count - 1 == 3
        }
        #expect(held, "\(listing)")
        #expect(configured(interval: "15").isEmpty, "\(fleet.stdout.text)")
        let second = try start()
        #expect(waitUntil(timeout: 60) { configured(interval: "15").count == 3 }, "\(fleet.stdout.text)")
        let (secondDone, secondStatus) = completed(second)
        #expect(secondDone, "\(secondStatus)")
    }

    @Test(
        "catalog signed and listed; settings checked, the password kept apart; SPIFFS and LittleFS images mounted by devicesim; withheld from another address; the serial image equals esptool merge-bin's; the password in no log, record or listing",
        .enabled(if: !esptoolMissing, "needs esptool (make deps installs it)"))
    func appWithConfiguration() throws {
        let dir = try TemporaryDirectory()
        let (repo, data) = (dir.file("repo"), dir.file("d"))
        let (firmware, spiffs) = try Self.publish(in: dir, into: [data])
        // A bad spec changes nothing and says why.
        try (spiffs.replacingOccurrences(of: "max: 21, default: 4", with: "max: 21, default: 40")).write(
            toFile: dir.file("bad.yaml"), atomically: true, encoding: .utf8)
        let bad = try run(["release", "add-app", "--repo", repo, dir.file("bad.yaml")])
        #expect(bad.0 == 1 && bad.2.contains("bad.yaml: properties[2].default: 40 is above the maximum 21"), "\(bad)")
        let apps = try Self.ok(["apps", "--data-dir", data, "--json"])
        #expect(apps.contains("\"name\":\"weather-station\"") && apps.contains("\"name\":\"lite\"") && apps.contains("\"type\":\"password\""), "\(apps)")

        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }
        let esp32 = "24:0a:c4:00:20:01"
        // Settings through the running agent: one bad value refuses the whole change.
        let refused = try run(["device", "config", "set", "--data-dir", data, "--app", "weather-station@2.1.0", esp32, "ssid=lab", "volume=30", "colour=red"])
        #expect(refused.0 == 1 && refused.2.contains("volume: 30 is above the maximum 21") && refused.2.contains("colour: no such property"), "\(refused)")
        let set = try Self.ok(
            [
                "device", "config", "set", "--data-dir", data, "--app", "weather-station@2.1.0", "--address", "127.0.0.1", esp32, "ssid=lab-net",
                "password=@env:WIFI_PW",
            ],
            environment: ["WIFI_PW": Self.password])
        #expect(set.contains("password set") && set.contains("through the running agent"), "\(set)")
        let shown = try Self.ok(["device", "config", "show", "--data-dir", data, esp32])
        #expect(shown.contains("password  (set)") && shown.contains("volume  4  (default)"), "\(shown)")

        // SPIFFS over the air: devicesim mounts the image with the app's parameters and reads it.
        let lines = try Self.devices(
            "esp32-httpupdate", mac: esp32, version: "2.1.0", filesystem: "spiffs:size=0x20000,page-size=256,block-size=4096,meta-len=4", gateway: gateway,
            deadline: 20)
        let configured = lines.first { $0.contains("\"event\":\"configured\"") } ?? ""
        #expect(configured.contains("\"setting.ssid\":\"lab-net\"") && configured.contains("\"setting.volume\":\"4\""), "\(lines)")
        #expect(configured.contains("\"setting.password\":\"set (\(Self.password.count) characters)\""), "\(configured)")
        #expect(lines.last?.contains("\"goal_met\":true") == true, "filesystem current after it: \(lines.suffix(3))")

        // LittleFS over the air, key=value format.
        let lite = "5c:cf:7f:00:20:02"
        try Self.ok(["device", "config", "set", "--data-dir", data, "--app", "lite@1.0.0", lite, "room=lab"])
        let liteLines = try Self.devices(
            "esp8266-httpupdate", mac: lite, version: "1.0.0", filesystem: "littlefs:size=0x10000,block-size=4096,name-max=32,config=/settings.txt",
            gateway: gateway,
            deadline: 20)
        #expect(liteLines.contains { $0.contains("\"event\":\"configured\"") && $0.contains("\"setting.room\":\"lab\"") }, "\(liteLines)")

        // An image with a password goes only to the device's address.
        let other = "24:0a:c4:00:20:03"
        try Self.ok(
            [
                "device", "config", "set", "--data-dir", data, "--app", "weather-station@2.1.0", "--address", "127.0.0.9", other, "ssid=x",
                "password=@env:WIFI_PW",
            ],
            environment: ["WIFI_PW": Self.password])
        let withheld = try Self.devices(
            "esp32-httpupdate", mac: other, version: "2.1.0", filesystem: "spiffs:size=0x20000,meta-len=4", gateway: gateway, deadline: 3)
        #expect(
            withheld.contains { $0.contains("filesystem-failed") && $0.contains("403") } && !withheld.contains { $0.contains("\"configured\"") }, "\(withheld)")
        let listed = try Self.ok(["devices", "--data-dir", data])
        #expect(listed.contains("goes only to 127.0.0.9, not 127.0.0.1"), "\(listed)")

        // Serial bootstrap: the same bytes as esptool merge-bin of the app and the image served.
        let merged = dir.file("merged.bin")
        let provisioned = try Self.ok(["provision", "--data-dir", data, "--device", esp32, "--out", merged])
        #expect(provisioned.contains("write-flash 0x0 \(merged)") && provisioned.contains("holds a password"), "\(provisioned)")
        let mergedBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: merged)))
        let images = try FileManager.default.contentsOfDirectory(atPath: "\(data)/keys/config").map { "\(data)/keys/config/\($0)" }
        let served = try #require(
            images.first { path in
                (try? Data(contentsOf: URL(fileURLWithPath: path))).map {
                    mergedBytes.count >= 0x290000 + $0.count && Array(mergedBytes[0x290000..<(0x290000 + $0.count)]) == [UInt8]($0)
                } ?? false
            },
            "the served image is the one in the serial image")
        let reference = dir.file("esptool.bin")
        let esptool = try runProgram(
            "/usr/bin/env", ["python3", "-m", "esptool", "--chip", "esp32", "merge-bin", "-o", reference, "0x10000", firmware, "0x290000", served])
        #expect(esptool.0 == 0, "\(esptool.2)")
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: reference))) == mergedBytes, "provision's image differs from esptool merge-bin's")
        var info = stat()
        #expect(stat(merged, &info) == 0 && info.st_mode & 0o077 == 0, "an image with a password is private")

        // The password: only in the secret store and the configuration images.
        gateway.stop()
        var leaks: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: data)
        while let name = enumerator?.nextObject() as? String {
            let path = "\(data)/\(name)"
            guard name != "keys/device-secrets.json", !name.hasPrefix("keys/config"),
                let bytes = FileManager.default.contents(atPath: path), bytes.range(of: Data(Self.password.utf8)) != nil
            else { continue }
            leaks.append(name)
        }
        #expect(leaks.isEmpty, "the password is in \(leaks)")
        let said = gateway.child.stdout.text + gateway.child.stderr.text + set + shown + listed + (try Self.ok(["devices", "--data-dir", data, "--json"]))
        #expect(!said.contains(Self.password), "the password was printed or logged")
    }
}
