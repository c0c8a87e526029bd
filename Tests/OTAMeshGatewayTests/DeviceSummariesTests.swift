import Foundation
import OTAMeshCommon
import Testing

@testable import OTAMeshGateway

/// The site view's records: what each gateway gossips about its devices, and how any gateway
/// merges them.
@Suite("device summaries")
struct DeviceSummariesTests {
    static func device(_ id: String, seen: Double, version: String = "1.0.0", hardware: String? = "esp32") -> DeviceRecord {
        DeviceRecord(
            id: id, family: .generic, hardware: hardware, version: version, address: "10.0.0.7", firstSeen: 1, lastSeen: seen,
            lastAnswer: "up to date")
    }

    static func published(_ writes: [(key: String, value: [UInt8])], onto current: [String: [UInt8]] = [:]) -> [String: [UInt8]] {
        var result = current
        for write in writes { result[write.key] = write.value }
        return result
    }

    @Test("only what changed is written; polling within five minutes changes nothing; a removed device is retracted")
    func onlyChanges() throws {
        let first = DeviceSummaries.writes(devices: [Self.device("a", seen: 1_000), Self.device("b", seen: 1_100)], published: [:])
        #expect(first.map(\.key) == ["dv/b", "dv/a"], "most recently seen first")
        var published = Self.published(first)
        #expect(
            DeviceSummaries.writes(devices: [Self.device("a", seen: 1_000 + 150), Self.device("b", seen: 1_100)], published: published).isEmpty,
            "a poll in the same five minutes rewrites nothing")
        let upgraded = DeviceSummaries.writes(devices: [Self.device("a", seen: 1_000, version: "2.0.0"), Self.device("b", seen: 1_100)], published: published)
        #expect(upgraded.map(\.key) == ["dv/a"])
        published = Self.published(upgraded, onto: published)
        let removed = DeviceSummaries.writes(devices: [Self.device("b", seen: 1_100)], published: published)
        #expect(removed.map(\.key) == ["dv/a"] && removed.first?.value == [])
        published = Self.published(removed, onto: published)
        #expect(DeviceSummaries.writes(devices: [Self.device("b", seen: 1_100)], published: published).isEmpty, "a retraction is written once")
    }

    @Test("bounded: at most 2,000 devices per gateway (the most recent), 20 writes a tick, hostile strings cut, ids that fit no key left out")
    func bounds() throws {
        let many = (0..<2_100).map { Self.device(String(format: "dev-%05d", $0), seen: Double($0) * 1_000) }
        var published: [String: [UInt8]] = [:]
        var ticks = 0
        while true {
            let writes = DeviceSummaries.writes(devices: many, published: published)
            if writes.isEmpty { break }
            #expect(writes.count <= DeviceSummaries.maxWritesPerTick)
            published = Self.published(writes, onto: published)
            ticks += 1
        }
        #expect(published.count == 2_000 && ticks == 100)
        #expect(published["dv/dev-00099"] == nil && published["dv/dev-02099"] != nil, "the least recently seen are left out")

        let hostile = DeviceRecord(
            id: "evil", family: DeviceFamily(rawValue: String(repeating: "f", count: 500)), hardware: String(repeating: "\u{1b}[31m", count: 300),
            version: String(repeating: "9", count: 5_000), address: "x", firstSeen: 0, lastSeen: .infinity,
            lastAnswer: String(repeating: "é", count: 10_000))
        let write = try #require(DeviceSummaries.writes(devices: [hostile], published: [:]).first)
        #expect(write.value.count <= DeviceSummaries.maxValue)
        let decoded = try #require(DeviceSummaries.decode(key: write.key, value: write.value))
        #expect(decoded.version?.count == 64 && decoded.family.rawValue.count == 32 && decoded.lastSeen == 0)
        #expect(
            DeviceSummaries.writes(
                devices: [Self.device(String(repeating: "x", count: 300), seen: 1), Self.device("line\nbreak", seen: 1)],
                published: [:]
            ).isEmpty)
    }

    @Test("a peer's record is refused when it is not a summary, names another device, or is too large")
    func hostileRecords() throws {
        let good = try #require(DeviceSummaries.encode(DeviceSummary(Self.device("a", seen: 600))))
        #expect(DeviceSummaries.decode(key: "dv/a", value: good)?.id == "a")
        #expect(DeviceSummaries.decode(key: "dv/b", value: good) == nil, "a record must name the device of its key")
        #expect(DeviceSummaries.decode(key: "dv/a", value: []) == nil)
        #expect(DeviceSummaries.decode(key: "dv/a", value: Array("not json".utf8)) == nil)
        #expect(DeviceSummaries.decode(key: "dv/a", value: Array(repeating: 0x20, count: 1_001) + good) == nil)
        #expect(DeviceSummaries.decode(key: "dv/a", value: Array(#"{"i":"a","f":"x","s":-5}"#.utf8)) == nil)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = DeviceSummaries.decode(key: "dv/a", value: Array(#"{"i":"a","#.utf8) + bytes)
        }
    }

    @Test("merge: a device two gateways know shows once, from the latest sighting, with both gateways named; this gateway's own records come from its registry")
    func merge() throws {
        func record(_ owner: String, _ device: DeviceRecord) throws -> (owner: String, key: String, value: [UInt8]) {
            (owner, "dv/\(device.id)", try #require(DeviceSummaries.encode(DeviceSummary(device))))
        }
        let remote = [
            try record("gw2", Self.device("shared", seen: 9_000, version: "2.0.0")),
            try record("gw3", Self.device("shared", seen: 3_000, version: "1.0.0")),
            try record("gw2", Self.device("only-gw2", seen: 600)),
            try record("gw1", Self.device("mine", seen: 1)),  // this gateway's own, stale: the registry wins
            ("gw3", "dv/gone", []),
            ("gw3", "ro/r-1/n", Array("1,2".utf8)),
        ]
        let site = DeviceSummaries.merge(gateway: "gw1", local: [Self.device("mine", seen: 5_555, version: "3.0.0")], remote: remote)
        #expect(site.map(\.id) == ["mine", "only-gw2", "shared"])
        let shared = try #require(site.first { $0.id == "shared" })
        #expect(shared.gateway == "gw2" && shared.gateways == ["gw2", "gw3"] && shared.version == "2.0.0")
        let mine = try #require(site.first { $0.id == "mine" })
        #expect(mine.gateway == "gw1" && mine.lastSeen == 5_555 && mine.version == "3.0.0" && mine.gateways == ["gw1"])
    }

    @Test("a restarted gateway's run: once it announces it, its records of earlier runs are skipped; before, they still show")
    func runs() throws {
        func record(_ device: DeviceRecord, run: UInt64?) throws -> (owner: String, key: String, value: [UInt8]) {
            var summary = DeviceSummary(device)
            summary.run = run
            return ("gw2", "dv/\(device.id)", try #require(DeviceSummaries.encode(summary)))
        }
        let old = try record(Self.device("removed-while-down", seen: 600), run: 100)
        let legacy = try record(Self.device("from-old-code", seen: 600), run: nil)
        let kept = try record(Self.device("kept", seen: 900), run: 200)
        #expect(DeviceSummaries.merge(gateway: "gw1", local: [], remote: [old, legacy, kept]).map(\.id) == ["from-old-code", "kept", "removed-while-down"])
        let announced = ("gw2", DeviceSummaries.runKey, Array("200".utf8))
        #expect(DeviceSummaries.merge(gateway: "gw1", local: [], remote: [old, legacy, kept, announced]).map(\.id) == ["kept"])
        // Another gateway's run says nothing about gw2's records; garbage runs are ignored.
        let other = ("gw3", DeviceSummaries.runKey, Array("999".utf8))
        let garbage = ("gw2", DeviceSummaries.runKey, Array("not a number".utf8))
        #expect(DeviceSummaries.merge(gateway: "gw1", local: [], remote: [old, kept, other, garbage]).count == 2)
        // Writes carry the run; a new run rewrites every device.
        let writes = DeviceSummaries.writes(devices: [Self.device("kept", seen: 900)], published: [kept.key: kept.value], run: 300)
        #expect(writes.count == 1 && DeviceSummaries.decode(key: writes[0].key, value: writes[0].value)?.run == 300)
    }
}
