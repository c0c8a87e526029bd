import Foundation
import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

/// The registry changes `otamesh device …` makes, as the agent applies them for the CLI.
@Suite("device changes")
struct DeviceChangesTests {
    static func changes(_ dir: TemporaryDirectory, targets: [String: Bool] = ["esp32/app/2.0.0.bin": false]) throws -> DeviceChanges {
        DeviceChanges(
            registry: try DeviceRegistry(path: dir.file("devices.sqlite")), secrets: DeviceSecretStore(path: dir.file("keys/device-secrets.json")),
            targets: { targets }, admission: .known, dataDirectory: dir.path, clock: .fixed(WallTime(seconds: 1_800_000_000)))
    }

    @Test("the JSON the CLI sends is the documented shape, and reads back the same")
    func codec() throws {
        let change = DeviceChange.assign(ids: ["aa:bb:cc:dd:ee:ff"], target: "esp32/app/2.0.0.bin")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try encoder.encode(change), as: UTF8.self) == #"{"assign":{"ids":["aa:bb:cc:dd:ee:ff"],"target":"esp32/app/2.0.0.bin"}}"#)
        let add = DeviceChange.add(
            record: DeviceRecord(id: "lamp-1", family: .fetchURL, address: "10.0.0.5", firstSeen: 1, lastSeen: 0), user: "admin", password: "pw")
        #expect(try JSONDecoder().decode(DeviceChange.self, from: try encoder.encode(add)) == add)
    }

    @Test("each change says what it did; a refusal names why, keeps what was done before it, and writes nothing else")
    func apply() throws {
        let dir = try TemporaryDirectory()
        let changes = try Self.changes(dir)
        #expect(
            try changes.apply(.assign(ids: ["AA-BB-CC-DD-EE-FF"], target: "esp32/app/2.0.0.bin"))
                == ["aa:bb:cc:dd:ee:ff: assigned esp32/app/2.0.0.bin (not in the cache yet: served once it arrives)"])
        let unknownTarget = #expect(throws: DeviceChangeError.self) { try changes.apply(.assign(ids: ["dev-2"], target: "no/such.bin")) }
        #expect(unknownTarget?.kind == .notFound && changes.registry.device("dev-2") == nil)
        #expect(throws: DeviceChangeError(.invalid, "tag 'a b': use letters, digits, - and _")) {
            try changes.apply(.tag(ids: ["aa:bb:cc:dd:ee:ff"], tags: ["a b"]))
        }
        #expect(try changes.apply(.tag(ids: ["aa:bb:cc:dd:ee:ff"], tags: ["Floor2"])) == ["aa:bb:cc:dd:ee:ff: tags floor2"])
        let partly = #expect(throws: DeviceChangeError.self) { try changes.apply(.accept(ids: ["aa:bb:cc:dd:ee:ff", "ghost"])) }
        #expect(partly?.done == ["aa:bb:cc:dd:ee:ff: accepted"] && partly?.message.hasPrefix("no device ghost") == true)
        #expect(throws: DeviceChangeError(.invalid, "no device id given")) { try changes.apply(.unassign(id: "")) }
        #expect(try changes.apply(.remove(id: "aa:bb:cc:dd:ee:ff")) == ["aa:bb:cc:dd:ee:ff: removed"])
        #expect(throws: DeviceChangeError(.notFound, "no device aa:bb:cc:dd:ee:ff")) { try changes.apply(.remove(id: "aa:bb:cc:dd:ee:ff")) }
    }

    @Test("a device assigned or tagged before it ever asked is served the assignment at once: the agent's memory holds it, nothing re-reads the database")
    func unseenDevice() throws {
        let dir = try TemporaryDirectory()
        let changes = try Self.changes(dir)
        _ = try changes.apply(.assign(ids: ["aa:bb:cc:00:00:01"], target: "esp32/app/2.0.0.bin"))
        _ = try changes.apply(.tag(ids: ["aa:bb:cc:00:00:02"], tags: ["floor3"]))
        #expect(changes.registry.assignment(for: "aa:bb:cc:00:00:01") == "esp32/app/2.0.0.bin")
        #expect(changes.registry.device("aa:bb:cc:00:00:02")?.tagList == ["floor3"])
    }
}
