import Foundation
import GRDB
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

#if canImport(Glibc)
import Glibc
#endif

/// Push devices in the registry: the v3 migration, `device add` / `remove` as the CLI writes
/// them and the agent reloads them, segments, and the push target a record makes.
@Suite("push device registry")
struct PushDeviceRegistryTests {
    @Test("v3 migrates a v2 database: old rows keep their data, become source request, get no proxy/options/segment")
    func migration() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("devices.sqlite")
        do {
            let pool = try DatabasePool(path: path)
            try DeviceRegistry.migrator.migrate(pool, upTo: "v2: tags and variant")
            try pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO device (id, family, version, address, firstSeen, lastSeen, assignedTarget, tags, variant)
                        VALUES ('aa:bb:cc:dd:ee:01', 'generic', '1.0.0', '10.77.3.9', 1, 2, 'esp32/app/2.0.0.bin', 'lobby', 'esp32')
                        """)
            }
            try pool.close()
        }
        let registry = try DeviceRegistry(path: path)
        let device = try #require(try registry.list().first)
        #expect(device.id == "aa:bb:cc:dd:ee:01" && device.version == "1.0.0" && device.assignedTarget == "esp32/app/2.0.0.bin" && device.tags == "lobby")
        #expect(device.source == "request" && device.proxy == nil && device.options == nil && device.segment == nil)
        #expect(device.effectiveSegment == "10.77.3.0/24")
        // Opening again runs nothing twice.
        _ = try DeviceRegistry(path: path)
    }

    @Test("device add writes a manual device; the agent's reload picks up adds, changes and removals")
    func addChangeRemove() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("devices.sqlite")
        let agent = try DeviceRegistry(path: path)
        let cli = try DeviceRegistry(path: path)

        try cli.add(
            DeviceRecord(
                id: "lamp-1", family: .fetchURL, hardware: "esp32", address: "10.77.3.20:8080", firstSeen: 5, lastSeen: 0,
                tags: "lobby", proxy: "http://10.77.0.1:3128", options: DeviceRecord.encodeOptions(["path": "/api/ota", "method": "PUT"])))
        #expect(agent.device("lamp-1") == nil)
        try agent.reloadAssignments()
        let added = try #require(agent.device("lamp-1"))
        #expect(added.source == "manual" && added.family == .fetchURL && added.address == "10.77.3.20:8080" && added.proxy == "http://10.77.0.1:3128")
        #expect(added.optionMap == ["path": "/api/ota", "method": "PUT"] && added.effectiveSegment == "10.77.3.0/24")
        #expect(added.options == "{\"method\":\"PUT\",\"path\":\"/api/ota\"}", "stored with sorted keys")

        // Redefined: new address, family, options, proxy and segment reach the agent; tags stay.
        try cli.add(DeviceRecord(id: "lamp-1", family: .httpUpload, address: "10.77.4.21", firstSeen: 6, lastSeen: 0, segment: "annex"))
        try agent.reloadAssignments()
        let changed = try #require(agent.device("lamp-1"))
        #expect(changed.family == .httpUpload && changed.address == "10.77.4.21" && changed.proxy == nil && changed.options == nil)
        #expect(changed.segment == "annex" && changed.effectiveSegment == "annex" && changed.tags == "lobby" && changed.hardware == "esp32")

        // A push confirmed a version: it is flushed, and a reload does not take it back.
        agent.confirmed("lamp-1", version: "2.0.0", variant: nil, answer: "pushed 2.0.0", at: 50)
        try agent.reloadAssignments()
        #expect(agent.device("lamp-1")?.version == "2.0.0", "memory newer than the database survives a reload")
        try agent.flush()
        #expect(try cli.list().first?.version == "2.0.0" && (try cli.list().first?.source) == "manual")

        #expect(try cli.remove("lamp-1"))
        #expect(try cli.remove("lamp-1") == false)
        try agent.reloadAssignments()
        #expect(agent.device("lamp-1") == nil, "removed by the CLI, gone from the agent")

        // A sighting not yet flushed is not dropped by a reload.
        agent.observe(DeviceSighting(id: "ip:10.0.0.5", family: .generic, address: "10.0.0.5", answer: "no assignment"), at: 60)
        try agent.reloadAssignments()
        #expect(agent.device("ip:10.0.0.5")?.source == "request")
        try agent.flush()
        #expect(try cli.list().map(\.source) == ["request"])
    }

    @Test("options a discovered device announced survive flush and reload; the admin's override them key by key")
    func announcedOptions() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("devices.sqlite")
        let agent = try DeviceRegistry(path: path)
        agent.observe(
            DeviceSighting(
                id: "mdns:esp-kitchen", family: .arduinoOTA, address: "10.77.3.9:3232", answer: "discovered",
                source: "mdns", options: ["dialect": "arduino", "version_port": "8080"]), at: 10)
        // A reload before the flush must not drop what the announcement said.
        try agent.reloadAssignments()
        try agent.flush()
        try agent.reloadAssignments()
        #expect(agent.device("mdns:esp-kitchen")?.optionMap == ["dialect": "arduino", "version_port": "8080"])
        let restarted = try DeviceRegistry(path: path)
        #expect(restarted.device("mdns:esp-kitchen")?.source == "mdns")
        #expect(try PushTarget(#require(restarted.device("mdns:esp-kitchen"))).options["version_port"] == "8080")

        // The admin redefines the port: their value wins, the announced dialect stays.
        let cli = try DeviceRegistry(path: path)
        var record = try #require(cli.device("mdns:esp-kitchen"))
        record.options = DeviceRecord.encodeOptions(["version_port": "9090"])
        try cli.add(record)
        try agent.reloadAssignments()
        #expect(agent.device("mdns:esp-kitchen")?.optionMap == ["dialect": "arduino", "version_port": "9090"])

        // The announcement changes: what it says now replaces what it said (confirm=none gone), also on disk.
        agent.observe(
            DeviceSighting(
                id: "mdns:esp-kitchen", family: .arduinoOTA, address: "10.77.3.9:3232", answer: "discovered",
                source: "mdns", options: ["dialect": "arduino", "confirm": "none"]), at: 20)
        try agent.flush()
        #expect(try DeviceRegistry(path: path).device("mdns:esp-kitchen")?.optionMap == ["dialect": "arduino", "confirm": "none", "version_port": "9090"])
        agent.observe(
            DeviceSighting(
                id: "mdns:esp-kitchen", family: .arduinoOTA, address: "10.77.3.9:3232", answer: "discovered",
                source: "mdns", options: ["dialect": "arduino"]), at: 30)
        try agent.flush()
        #expect(try DeviceRegistry(path: path).device("mdns:esp-kitchen")?.optionMap == ["dialect": "arduino", "version_port": "9090"])
        // A device's own request (not discovery) leaves the announced options alone.
        agent.observe(DeviceSighting(id: "mdns:esp-kitchen", family: .arduinoOTA, address: "10.77.3.9:3232", answer: "GET /"), at: 40)
        try agent.flush()
        #expect(try DeviceRegistry(path: path).device("mdns:esp-kitchen")?.optionMap == ["dialect": "arduino", "version_port": "9090"])
    }

    @Test("segments derived from addresses: IPv4 /24, IPv6 /64, names share one")
    func segments() {
        #expect(DeviceRecord.segment(forAddress: "10.77.3.9") == "10.77.3.0/24")
        #expect(DeviceRecord.segment(forAddress: "10.77.3.9:8080") == "10.77.3.0/24")
        #expect(DeviceRecord.segment(forAddress: "[fd00:1:2:3::9]:80") == "fd00:1:2:3::/64")
        #expect(DeviceRecord.segment(forAddress: "fd00:0001:0002:0003:0:0:0:9") == "fd00:1:2:3::/64")
        #expect(DeviceRecord.segment(forAddress: "fd00::9") == "fd00:0:0:0::/64")
        #expect(DeviceRecord.segment(forAddress: "lamp.local:80") == "other")
        #expect(DeviceRecord.segment(forAddress: "") == "other")
    }

    @Test("the push target of a record carries its proxy, options and the secret store's credentials")
    func pushTarget() throws {
        let dir = try TemporaryDirectory()
        let secrets = DeviceSecretStore(path: DeviceSecretStore.path(dataDirectory: dir.path))
        try secrets.set("lamp-1", user: "ota", password: "pw-lamp-1")
        let record = DeviceRecord(
            id: "lamp-1", family: .fetchURL, address: "10.77.3.20:8080", firstSeen: 1, lastSeen: 0,
            proxy: "http://10.77.0.1:3128", options: DeviceRecord.encodeOptions(["path": "/x"]))
        let target = try PushTarget(record, secrets: secrets)
        #expect(target.host == "10.77.3.20" && target.port == 8080 && target.proxy == "http://10.77.0.1:3128" && target.options == ["path": "/x"])
        #expect(target.credentials == PushCredentials(username: "ota", password: "pw-lamp-1"))
        #expect(!"\(target)".contains("pw-lamp-1"))
        var other = record
        other.id = "lamp-2"
        #expect(try PushTarget(other, secrets: secrets).credentials == nil)
    }
}

/// The device secret store: 0600 in a 0700 directory, atomic replacement, re-read on change,
/// clear errors that name the file and never its content.
@Suite("device secret store")
struct DeviceSecretStoreTests {
    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : 0
    }

    @Test("set writes 0600 in a 0700 directory, atomically; remove; a missing file is no secrets")
    func writes() throws {
        let dir = try TemporaryDirectory()
        let path = DeviceSecretStore.path(dataDirectory: dir.path)
        let store = DeviceSecretStore(path: path)
        #expect(try store.credentials(for: "a") == nil)
        try store.set("a", user: "admin", password: "pw-a")
        try store.set("b", user: "ota", password: "pw-\"b\"\n")
        #expect(Self.mode(path) == 0o600)
        #expect(Self.mode(dir.file("keys")) == 0o700)
        #expect(try store.credentials(for: "b") == PushCredentials(username: "ota", password: "pw-\"b\"\n"))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"), "written through a temporary file, renamed into place")
        // Atomic: a reader holding the old file keeps reading the old content (a new inode replaced it).
        let before = DeviceSecretStore.stamp(path)
        try store.set("c", user: "admin", password: "pw-c")
        #expect(DeviceSecretStore.stamp(path).first != before.first, "replaced by rename, not rewritten in place")
        #expect(try store.remove("a") && !(try store.remove("a")))
        #expect(try store.ids() == ["b", "c"])
    }

    @Test("the agent's store sees changes another process writes")
    func rereads() throws {
        let dir = try TemporaryDirectory()
        let path = DeviceSecretStore.path(dataDirectory: dir.path)
        let agent = DeviceSecretStore(path: path)
        let cli = DeviceSecretStore(path: path)
        #expect(try agent.credentials(for: "d") == nil)
        try cli.set("d", user: "admin", password: "first")
        #expect(try agent.credentials(for: "d") == PushCredentials(username: "admin", password: "first"))
        try cli.set("d", user: "admin", password: "second")
        #expect(try agent.credentials(for: "d") == PushCredentials(username: "admin", password: "second"))
    }

    @Test("malformed, unreadable or group-readable files are typed errors naming the file, never the content")
    func errors() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("keys"), withIntermediateDirectories: true)
        let path = DeviceSecretStore.path(dataDirectory: dir.path)
        let cases: [(String, String)] = [
            ("{\"d\": {\"user\": \"admin\", \"password\": \"hunter2-secret\"", "not valid JSON"),
            ("[\"hunter2-secret\"]", "top level must be a JSON object"),
            ("{\"d\": \"hunter2-secret\"}", "device d: expected an object"),
            ("{\"d\": {\"user\": \"admin\", \"password\": 7}}", "device d: password missing or not a string"),
        ]
        for (content, words) in cases {
            _ = FileManager.default.createFile(atPath: path, contents: Data(content.utf8), attributes: [.posixPermissions: 0o600])
            let store = DeviceSecretStore(path: path)
            let error = #expect(throws: DeviceSecretError.self) { try store.credentials(for: "d") }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains(path) && text.contains(words) && !text.contains("hunter2"), "\(text)")
            // Nothing changes on a write attempt over a malformed file.
            #expect(throws: DeviceSecretError.self) { try store.set("e", user: "u", password: "p") }
            #expect((try? String(contentsOfFile: path, encoding: .utf8)) == content)
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data("{}".utf8), attributes: [.posixPermissions: 0o644])
        #expect(throws: DeviceSecretError.tooOpen(path: path, mode: 0o644)) { try DeviceSecretStore(path: path).credentials(for: "d") }
        #expect(DeviceSecretError.tooOpen(path: path, mode: 0o644).description.contains("chmod 600"))
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        #expect(throws: DeviceSecretError.self) { try DeviceSecretStore(path: path).credentials(for: "d") }
    }
}
