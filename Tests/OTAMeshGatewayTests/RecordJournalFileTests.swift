import Foundation
import OTAMeshGossip
import OTAMeshStore
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGateway

/// The journal of a gateway's own gossip records on disk: what it appended is there after a
/// restart, a torn last write costs only that write, damage is kept aside, not rewritten away.
@Suite("records journal file")
struct RecordJournalFileTests {
    static func record(_ key: String, _ version: UInt64, _ value: String, owner: String = "gw-1") -> ReplicatedRecords.Record {
        ReplicatedRecords.Record(key: key, owner: owner, version: version, value: Array(value.utf8))
    }

    @Test("appended records are read back at the next open, newest per key; holdings and device summaries are not journalled")
    func reopen() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("gossip/records.journal")
        var (journal, restored) = try RecordJournalFile.open(path: path, owner: "gw-1") { Issue.record("unexpected warning: \($0)") }
        #expect(restored.isEmpty)
        for (index, key) in ["ro/r1/n", "ro/r1/h", "held/abc", "dv/dev-1", "dv.run", "ro/r1/n"].enumerated() {
            try journal.append(Self.record(key, UInt64(100 + index), "v\(index)"))
        }
        try journal.sync()
        journal.close()
        var warnings: [String] = []
        (journal, restored) = try RecordJournalFile.open(path: path, owner: "gw-1") { warnings.append($0) }
        journal.close()
        #expect(warnings.isEmpty)
        #expect(restored == [Self.record("ro/r1/h", 101, "v1"), Self.record("ro/r1/n", 105, "v5")])
        // A data directory moved to a gateway of another name: its records are not this one's.
        (journal, restored) = try RecordJournalFile.open(path: path, owner: "gw-2") { warnings.append($0) }
        journal.close()
        #expect(restored.isEmpty && warnings.count == 1 && warnings[0].contains("another node name"), "\(warnings)")
    }

    @Test("a journal mostly of superseded entries is rewritten to its newest records as it grows")
    func compaction() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("records.journal")
        var (journal, _) = try RecordJournalFile.open(path: path, owner: "gw-1") { Issue.record("unexpected warning: \($0)") }
        for version in 1...20_000 { try journal.append(Self.record("ro/r1/n", UInt64(version), "\(version % 7),\(version) \(version)")) }
        journal.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size < 2 << 20, "20,000 rewrites of one record stay around the 1 MiB rewrite point: \(size) bytes")
        let (reopened, restored) = try RecordJournalFile.open(path: path, owner: "gw-1") { Issue.record("unexpected warning: \($0)") }
        var done = reopened
        done.close()
        #expect(restored.map(\.version) == [20_000])
    }

    @Test("a torn last entry (a crash mid-append) costs only that entry; a damaged journal is kept aside as .damaged")
    func damage() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("records.journal")
        var (journal, _) = try RecordJournalFile.open(path: path, owner: "gw-1") { Issue.record("unexpected warning: \($0)") }
        try journal.append(Self.record("ro/r1/h", 7, "1 5 halted"))
        try journal.append(Self.record("ro/r1/n", 8, "3 5"))
        journal.close()
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        try Data(bytes.dropLast(5)).write(to: URL(fileURLWithPath: path))
        var warnings: [String] = []
        var (torn, restored) = try RecordJournalFile.open(path: path, owner: "gw-1") { warnings.append($0) }
        torn.close()
        #expect(restored.map(\.key) == ["ro/r1/h"] && warnings.count == 1 && warnings[0].contains("torn"), "\(warnings)")
        #expect(!FileManager.default.fileExists(atPath: path + ".damaged"), "a torn tail is no damage")

        bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 6] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        warnings = []
        (torn, restored) = try RecordJournalFile.open(path: path, owner: "gw-1") { warnings.append($0) }
        torn.close()
        #expect(restored.isEmpty && warnings.first?.contains("checksum mismatch") == true, "\(warnings)")
        #expect(FileManager.default.fileExists(atPath: path + ".damaged"), "the damaged file is kept for a look")
        #expect(RecordJournal.decode(try Array(Data(contentsOf: URL(fileURLWithPath: path)))).problem == nil, "and a clean journal replaces it")
    }

    @Test("a journal too large to be one this gateway wrote is refused with its path and size")
    func oversized() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("records.journal")
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        #expect(truncate(path, off_t(RecordJournalFile.maxFileBytes + 1)) == 0)
        #expect(throws: StoreError.self) { _ = try RecordJournalFile.open(path: path, owner: "gw-1") { _ in } }
    }
}
