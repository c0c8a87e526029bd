import OTAMeshCommon
import OTAMeshTestSupport
import PropertyBased
import Testing

@testable import OTAMeshGossip

@Suite("records journal format")
struct RecordJournalTests {
    static func record(_ key: String, _ version: UInt64, _ value: String, owner: String = "gw-1") -> ReplicatedRecords.Record {
        ReplicatedRecords.Record(key: key, owner: owner, version: version, value: Array(value.utf8))
    }

    @Test("entries appended in any order read back as the newest record per key")
    func roundTrip() throws {
        let records = [
            Self.record("ro/r1/n", 5, "3 5"), Self.record("ro/r1/h", 7, "1 5 halted"), Self.record("ro/r1/n", 9, "4 9"),
            Self.record("ro/r1/n", 6, "3 6"), Self.record("site/rotation", 8, String(repeating: "k", count: 1_200)),
        ]
        var bytes = RecordJournal.magic
        for record in records { bytes += try #require(RecordJournal.entry(record)) }
        let loaded = RecordJournal.decode(bytes)
        #expect(loaded.problem == nil && loaded.entries == 5 && loaded.validLength == bytes.count)
        #expect(loaded.records == [records[1], records[2], records[4]])
        #expect(RecordJournal.decode(RecordJournal.file(loaded.records)).records == loaded.records, "a rewrite keeps exactly the newest")
        #expect(RecordJournal.decode([]).problem == nil && RecordJournal.decode([]).records.isEmpty, "a missing journal is an empty one")
        #expect(
            RecordJournal.entry(Self.record("", 1, "x")) == nil && RecordJournal.entry(Self.record("k", 1, String(repeating: "v", count: 1_201))) == nil,
            "what the wire cannot carry is never journalled")
    }

    @Test("a torn last entry keeps every entry before it; damage in the middle stops there and says where and why")
    func damage() throws {
        let first = try #require(RecordJournal.entry(Self.record("ro/r1/h", 7, "1 5 halted")))
        let second = try #require(RecordJournal.entry(Self.record("ro/r1/n", 9, "4 9")))
        let whole = RecordJournal.magic + first + second
        for cut in 1..<second.count {
            let loaded = RecordJournal.decode(Array(whole.dropLast(cut)))
            #expect(loaded.records.map(\.key) == ["ro/r1/h"] && loaded.tornTail && loaded.validLength == RecordJournal.magic.count + first.count)
        }
        var flipped = whole
        flipped[RecordJournal.magic.count + 10] ^= 0x40
        let damaged = RecordJournal.decode(flipped)
        #expect(damaged.records.isEmpty && !damaged.tornTail)
        #expect(damaged.problem == "offset \(RecordJournal.magic.count): entry checksum mismatch")
        let foreign = RecordJournal.decode(Array("{\"not\": \"a journal\"}".utf8))
        #expect(foreign.problem?.contains("not an otamesh records journal") == true && foreign.records.isEmpty)
    }

    @Test("any bytes decode without a crash, and never to more entries than fit")
    func hostileBytes() async {
        await propertyCheck(count: 300, input: Gen.uint64()) { seed in
            var rng = SplitMix64(seed: seed)
            let good = RecordJournal.entry(Self.record("ro/r1/n", rng.next() % 100, "3 5")) ?? []
            let tail = (0..<Int(rng.next() % 600)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let bytes = RecordJournal.magic + (rng.next() % 2 == 0 ? good : []) + tail
            let loaded = RecordJournal.decode(bytes)
            #expect(loaded.validLength <= bytes.count && loaded.entries <= bytes.count / 22)
        }
    }
}
