import Foundation
import Testing

@testable import OTAMeshStore

@Suite("blob store")
struct BlobStoreTests {
    @Test("add stores content by sha256 under blobs/sha256/ab/ and reads it back")
    func addAndRead() throws {
        let dir = try TemporaryDirectory()
        let store = try openStore(dir)
        let bytes = patterned(100_000, seed: 1)
        let record = try store.add(bytes: bytes)
        #expect(record.sha256 == sha256Hex(bytes))
        #expect(record.size == 100_000)
        let digest = try digest(of: bytes)
        #expect(store.path(of: digest) == dir.file("data/blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)"))
        #expect(try store.read(digest) == bytes)
        #expect(try store.list().map(\.sha256) == [digest.hex])
        #expect(try store.totals().count == 1)
        #expect(listing(dir.file("data/partial")).isEmpty)
        // Adding the same content again is a no-op that returns the committed record.
        #expect(try store.add(bytes: bytes, expected: ExpectedContent(digest: digest, size: 100_000)).sha256 == digest.hex)
    }

    @Test(
        "ingest records SHA-1 and MD5 next to SHA-256 (also across a resumed ingest); a blob from an older store gets them computed once, and recorded"
    )
    func transportDigests() throws {
        let dir = try TemporaryDirectory()
        let bytes = patterned(3 << 20, seed: 9)
        let other = try TemporaryDirectory()
        let whole = try openStore(other).add(bytes: bytes)
        let expected = ExpectedContent(digest: try digest(of: bytes), size: Int64(bytes.count))
        do {
            let store = try openStore(dir)
            let abc = try store.add(bytes: Array("abc".utf8))
            #expect(abc.sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
            #expect(abc.md5 == "900150983cd24fb0d6963f7d28e17f72")
            #expect(try store.blob(abc.digest)?.sha1 == abc.sha1)
            // Resumed: the digests cover the bytes written before the "crash" too.
            guard case .receive(let ingest) = try store.beginIngest(expected: expected) else { throw CancellationError() }
            try ingest.write(bytes[0..<(1 << 20) + 7])
        }
        let reopened = try openStore(dir)
        guard case .receive(let ingest) = try reopened.beginIngest(expected: expected) else { throw CancellationError() }
        try ingest.write(bytes[Int(ingest.offset)...])
        let resumed = try ingest.commit()
        #expect(resumed.sha1 == whole.sha1 && resumed.md5 == whole.md5 && resumed.sha1 != nil)

        // An older store's row: no digests until asked, then computed from the file and kept.
        try reopened.catalog.write { db in try db.execute(sql: "UPDATE blob SET sha1 = NULL, md5 = NULL") }
        #expect(try reopened.blob(resumed.digest)?.sha1 == nil)
        let computed = try #require(try reopened.transportDigests(resumed.digest))
        #expect(computed.sha1 == whole.sha1 && computed.md5 == whole.md5)
        #expect(try reopened.blob(resumed.digest)?.md5 == whole.md5)
        #expect(try reopened.transportDigests(try digest(of: Array("absent".utf8))) == nil)
    }

    @Test("content that does not match its expected digest or length leaves no trace")
    func mismatchLeavesNoTrace() throws {
        let dir = try TemporaryDirectory()
        let store = try openStore(dir)
        let bytes = patterned(50_000, seed: 2)
        let wrong = try digest(of: patterned(10, seed: 3))
        #expect(throws: StoreError.digestMismatch(expected: wrong.hex, actual: sha256Hex(bytes))) {
            try store.add(bytes: bytes, expected: ExpectedContent(digest: wrong))
        }
        let right = try digest(of: bytes)
        #expect(throws: StoreError.sizeMismatch(expected: 60_000, actual: 50_000)) {
            try store.add(bytes: bytes, expected: ExpectedContent(digest: right, size: 60_000))
        }
        #expect(throws: StoreError.exceedsExpectedSize(expected: 40_000)) {
            try store.add(bytes: bytes, expected: ExpectedContent(digest: right, size: 40_000))
        }
        #expect(try store.list().isEmpty)
        #expect(try store.partials().isEmpty)
        #expect(listing(dir.file("data/partial")).isEmpty)
        #expect(listing(dir.file("data/blobs/sha256")).isEmpty)
    }

    @Test("an interrupted ingest resumes from the bytes already on disk after reopening")
    func resume() throws {
        let dir = try TemporaryDirectory()
        let bytes = patterned(3 << 20, seed: 4)
        let expected = ExpectedContent(digest: try digest(of: bytes), size: Int64(bytes.count))
        do {
            let store = try openStore(dir)
            guard case .receive(let ingest) = try store.beginIngest(expected: expected) else {
                Issue.record("blob unexpectedly present")
                return
            }
            try ingest.write(bytes[0..<(1 << 20)])
            try ingest.write(bytes[(1 << 20)..<(2 << 20) + 123])
            // The process "dies" here: no commit, no abandon.
        }
        let store = try openStore(dir)
        #expect(try store.list().isEmpty)
        #expect(try store.partials().count == 1)
        guard case .receive(let ingest) = try store.beginIngest(expected: expected) else {
            Issue.record("blob unexpectedly present")
            return
        }
        #expect(ingest.offset == Int64((2 << 20) + 123))
        #expect(ingest.resumedBytes == ingest.offset)
        try ingest.write(bytes[Int(ingest.offset)...])
        let record = try ingest.commit()
        #expect(record.sha256 == expected.digest.hex)
        #expect(try store.read(expected.digest) == bytes)
        #expect(try store.partials().isEmpty)
    }

    @Test("a resumed partial whose prefix was damaged fails verification and leaves no trace")
    func damagedResume() throws {
        let dir = try TemporaryDirectory()
        let bytes = patterned(200_000, seed: 5)
        let expected = ExpectedContent(digest: try digest(of: bytes), size: Int64(bytes.count))
        do {
            let store = try openStore(dir)
            let begun = try store.beginIngest(expected: expected)
            guard case .receive(let ingest) = begun else {
                Issue.record("a fresh store did not start receiving \(expected.digest.hex): \(begun)")
                return
            }
            try ingest.write(bytes[0..<100_000])
        }
        // Flip a byte in the partial on disk.
        let partial = dir.file("data/partial/sha256-\(expected.digest.hex)")
        var onDisk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: partial)))
        onDisk[500] ^= 0xFF
        try Data(onDisk).write(to: URL(fileURLWithPath: partial))
        let store = try openStore(dir)
        #expect(throws: StoreError.self) { try store.add(bytes: bytes, expected: expected) }
        #expect(try store.list().isEmpty)
        #expect(listing(dir.file("data/partial")).isEmpty)
        // A fresh attempt starts from zero and succeeds.
        #expect(try store.add(bytes: bytes, expected: expected).sha256 == expected.digest.hex)
    }

    @Test("quota evicts unpinned blobs least recently used first, never pinned ones")
    func quotaLRU() throws {
        let dir = try TemporaryDirectory()
        let clock = TestClock()
        let store = try openStore(dir, quota: 3_000, clock: clock)
        let blobs = (1...5).map { patterned(1_000, seed: UInt64(10 + $0)) }
        var digests: [BlobDigest] = []
        for bytes in blobs[0..<3] {
            clock.advance()
            digests.append(try store.add(bytes: bytes).digest)
        }
        clock.advance()
        _ = try store.open(digests[0])  // blob 0 is now the most recently used
        clock.advance()
        digests.append(try digest(of: blobs[3]))
        try store.add(bytes: blobs[3])
        #expect(Set(try store.list().map(\.sha256)) == Set([digests[0], digests[2], digests[3]].map(\.hex)), "blob 1 was least recently used")
        try store.pin(digests[2], label: "rollout-7")
        clock.advance()
        digests.append(try digest(of: blobs[4]))
        try store.add(bytes: blobs[4])
        let remaining = Set(try store.list().map(\.sha256))
        #expect(remaining.contains(digests[2].hex), "pinned blob survives although it is the least recently used")
        #expect(remaining == Set([digests[2], digests[3], digests[4]].map(\.hex)))
        #expect(try store.blob(digests[2])?.pins == ["rollout-7"])
        #expect(try store.totals().bytes <= 3_000)
    }

    @Test("a blob larger than the quota left after pins is refused without a trace")
    func quotaRefusal() throws {
        let dir = try TemporaryDirectory()
        let store = try openStore(dir, quota: 2_500)
        let pinned = patterned(1_000, seed: 20)
        #expect(throws: StoreError.notFound(digest: sha256Hex(pinned))) { try store.pin(try digest(of: pinned), label: "keep") }
        let first = try store.add(bytes: pinned)
        try store.pin(first.digest, label: "keep")
        let big = patterned(2_000, seed: 21)
        #expect(throws: StoreError.quotaExceeded(size: 2_000, quota: 2_500, pinned: 1_000)) { try store.add(bytes: big) }
        #expect(throws: StoreError.quotaExceeded(size: 2_000, quota: 2_500, pinned: 1_000)) {
            try store.add(bytes: big, expected: ExpectedContent(digest: try digest(of: big), size: 2_000))
        }
        #expect(try store.list().map(\.sha256) == [first.sha256])
        #expect(listing(dir.file("data/partial")).isEmpty)
        // Asked before a download starts (a swarm fetch assembles beside the store).
        #expect(throws: StoreError.quotaExceeded(size: 2_000, quota: 2_500, pinned: 1_000)) { try store.checkFits(size: 2_000) }
        try store.checkFits(size: 1_500)
        // Unpinned, the pinned blob may be evicted to make room.
        try store.unpin(first.digest)
        #expect(try store.add(bytes: big).size == 2_000)
        #expect(try store.list().count == 1)
    }

    @Test("verify quarantines a blob whose bytes changed on disk; it is never served again")
    func verifyQuarantines() throws {
        let dir = try TemporaryDirectory()
        let store = try openStore(dir)
        let good = try store.add(bytes: patterned(10_000, seed: 30))
        let bad = try store.add(bytes: patterned(10_000, seed: 31))
        let path = store.path(of: bad.digest)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[9_999] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let report = try store.verify()
        #expect(report.checked == 2)
        #expect(report.corrupt == [bad.sha256])
        #expect(try store.list().map(\.sha256) == [good.sha256])
        #expect(throws: StoreError.notFound(digest: bad.sha256)) { try store.open(bad.digest) }
        #expect(listing(dir.file("data/quarantine")).count == 1)
        #expect(try store.verify().corrupt.isEmpty)
    }

    @Test("reopening reconciles disk and catalog after a crash")
    func reconcile() throws {
        let dir = try TemporaryDirectory()
        let kept = patterned(4_000, seed: 40)
        let orphan = patterned(5_000, seed: 41)
        let vanished: BlobRecord
        do {
            let store = try openStore(dir)
            try store.add(bytes: kept)
            vanished = try store.add(bytes: patterned(6_000, seed: 42))
        }
        // Crash between rename and catalog commit: a verified file without a row.
        let orphanDigest = try digest(of: orphan)
        let fanout = dir.file("data/blobs/sha256/\(orphanDigest.fanout)")
        try FileManager.default.createDirectory(atPath: fanout, withIntermediateDirectories: true)
        try Data(orphan).write(to: URL(fileURLWithPath: "\(fanout)/\(orphanDigest.hex)"))
        // A file whose name is a digest its content does not match.
        let liarDigest = try digest(of: patterned(7, seed: 43))
        let liarDir = dir.file("data/blobs/sha256/\(liarDigest.fanout)")
        try FileManager.default.createDirectory(atPath: liarDir, withIntermediateDirectories: true)
        try Data("not it".utf8).write(to: URL(fileURLWithPath: "\(liarDir)/\(liarDigest.hex)"))
        // A row whose file is gone, and a partial file nobody owns.
        try FileManager.default.removeItem(atPath: dir.file("data/blobs/sha256/\(vanished.digest.fanout)/\(vanished.sha256)"))
        try Data("junk".utf8).write(to: URL(fileURLWithPath: dir.file("data/partial/tmp-deadbeef")))

        let store = try openStore(dir)
        let listed = Set(try store.list().map(\.sha256))
        #expect(listed == Set([sha256Hex(kept), orphanDigest.hex]))
        #expect(try store.read(orphanDigest) == orphan)
        #expect(listing(dir.file("data/partial")).isEmpty)
        #expect(listing(dir.file("data/quarantine")).count == 1)
        #expect(try store.verify().corrupt.isEmpty)
    }

    @Test("a second writer is refused while the data directory is locked; readers still list")
    func locking() throws {
        let dir = try TemporaryDirectory()
        let store = try openStore(dir)
        try store.add(bytes: patterned(100, seed: 50))
        let failure = failureOf { _ = try openStore(dir) }
        guard case .locked(_, let holder)? = failure else {
            Issue.record("expected a lock error, got \(String(describing: failure))")
            return
        }
        #expect(holder == "process \(getpid())")
        #expect(failure?.description.contains("is locked by process") == true)
        let reader = try BlobStore(configuration: StoreConfiguration(directory: dir.file("data")), mode: .readOnly)
        #expect(try reader.list().count == 1)
        #expect(throws: StoreError.self) { try reader.add(bytes: [1, 2, 3]) }
    }

    @Test("a data directory that is a file, or cannot be created, is a clear error")
    func unusableDirectory() throws {
        let dir = try TemporaryDirectory()
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("data")))
        #expect { try openStore(dir) } throws: { error in
            (error as? StoreError)?.description == "data directory \(dir.file("data")): exists and is not a directory"
        }
        #expect(throws: StoreError.self) {
            try BlobStore(configuration: StoreConfiguration(directory: dir.file("missing/parent/data")))
        }
    }

    @Test(
        "a full disk (ENOSPC) fails the add with a clear error and leaves the store as it was",
        .enabled(if: TestEnvironment.isRoot, "needs root to mount a small tmpfs"))
    func noSpace() throws {
        let dir = try TemporaryDirectory()
        let tmpfs = try Tmpfs(at: dir.file("small"), size: "2m")
        let mountPoint = tmpfs.path
        let first = patterned(200_000, seed: 60)
        let store = try BlobStore(configuration: StoreConfiguration(directory: "\(mountPoint)/data"))
        try store.add(bytes: first)
        let huge = patterned(4 << 20, seed: 61)
        let failure = failureOf { try store.add(bytes: huge) }
        #expect(failure?.isNoSpace == true, "\(String(describing: failure))")
        #expect(failure?.description.contains("No space left on device (ENOSPC)") == true)
        #expect(try store.list().map(\.sha256) == [sha256Hex(first)])
        #expect(try store.partials().isEmpty)
        #expect(listing("\(mountPoint)/data/partial").isEmpty)
        #expect(try store.read(try digest(of: first)) == first)
        // Space is back: the next add works.
        #expect(try store.add(bytes: patterned(100_000, seed: 62)).size == 100_000)
    }
}
