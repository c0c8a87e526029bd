import Crypto
import Dispatch
import GRDB
import OTAMeshCommon

#if canImport(Glibc)
import Glibc
#endif

/// Receives one blob into `partial/`, hashing while it writes. Not shared between tasks.
///
/// A partial for an expected digest survives a crash: the next ``BlobStore/beginIngest(expected:)``
/// for the same digest re-hashes the bytes already on disk and continues from ``offset``.
/// ``commit()`` makes the blob visible only after fsync, verification and the catalog commit;
/// any failure (wrong digest or length, full disk, quota) removes every trace of the partial.
public final class Ingest {
    static let bufferSize = 1 << 20

    let store: BlobStore
    var record: PartialRecord
    let path: String
    private var fd: Int32
    private var hasher = ContentHashers()
    private var closed = false
    /// Bytes received so far (including any resumed prefix).
    public private(set) var offset: Int64
    /// Bytes that were already on disk from an earlier, interrupted ingest.
    public let resumedBytes: Int64

    /// The digest this ingest must produce, if known.
    public var expected: ExpectedContent? {
        record.expectedSHA256.map { ExpectedContent(digest: BlobDigest(trusted: $0), size: record.expectedSize) }
    }

    init(store: BlobStore, record: PartialRecord) throws(StoreError) {
        self.store = store
        self.record = record
        self.path = store.partialPath(record.id)
        let fd = try POSIX.open(path, O_RDWR | O_CREAT, mode: 0o644, operation: "open partial")
        self.fd = fd
        var resumed: Int64 = 0
        do {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw StoreError.io(operation: "stat", path: path, errno: errno) }
            resumed = Int64(info.st_size)
            if let size = record.expectedSize, resumed > size {
                try POSIX.truncate(fd, to: 0, path: path)
                resumed = 0
            }
            if resumed > 0 { try Self.hashPrefix(fd: fd, length: resumed, path: path, into: &hasher) }
            guard lseek(fd, off_t(resumed), SEEK_SET) >= 0 else {
                throw StoreError.io(operation: "seek", path: path, errno: errno)
            }
        } catch let error as StoreError {
            close(fd)
            throw error
        } catch {
            close(fd)
            throw .io(operation: "resume", path: path, errno: EIO)
        }
        self.offset = resumed
        self.resumedBytes = resumed
        if resumed > 0 { store.metrics.resumes.increment() }
    }

    deinit {
        if !closed { close(fd) }
    }

    private static func hashPrefix(fd: Int32, length: Int64, path: String, into hasher: inout ContentHashers) throws(StoreError) {
        var buffer = [UInt8](repeating: 0, count: bufferSize)
        var done: Int64 = 0
        while done < length {
            let want = Int(min(Int64(buffer.count), length - done))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw .io(operation: "read partial", path: path, errno: errno) }
            if n == 0 { throw .sizeMismatch(expected: length, actual: done) }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            done += Int64(n)
        }
    }

    /// The validator recorded for the bytes held so far (see ``PartialRecord/validator``).
    public var validator: String? { record.validator }

    /// Records the server's validator for the bytes being received (persisted, so a resume
    /// after a crash can still send If-Range).
    public func setValidator(_ validator: String?) throws(StoreError) {
        guard validator != record.validator else { return }
        record.validator = validator
        let id = record.id
        try store.catalog.write(changesBlobs: false) { db in
            try db.execute(sql: "UPDATE partial SET validator = ? WHERE id = ?", arguments: [validator, id])
        }
    }

    /// Drops the bytes received so far and starts again from offset 0 (the server's
    /// representation changed under us).
    public func restart() throws(StoreError) {
        guard !closed else { throw .ingestClosed }
        try POSIX.truncate(fd, to: 0, path: path)
        guard lseek(fd, 0, SEEK_SET) >= 0 else { throw .io(operation: "seek", path: path, errno: errno) }
        hasher = ContentHashers()
        offset = 0
        try setValidator(nil)
    }

    /// Appends bytes from an array slice.
    public func write(_ bytes: ArraySlice<UInt8>) throws(StoreError) {
        var failure: StoreError?
        bytes.withUnsafeBytes { raw in
            do throws(StoreError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Appends bytes. Throws (and the caller should ``abandon()``) when they exceed the
    /// expected length or the disk refuses them.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard !closed else { throw .ingestClosed }
        if let size = record.expectedSize, offset + Int64(bytes.count) > size {
            throw .exceedsExpectedSize(expected: size)
        }
        hasher.update(bufferPointer: bytes)
        try POSIX.writeAll(fd, bytes, path: relativePath)
        offset += Int64(bytes.count)
    }

    /// Verifies and commits the blob. On any failure the partial is removed and the store is
    /// as it was before the ingest began.
    public func commit() throws(StoreError) -> BlobRecord {
        guard !closed else { throw .ingestClosed }
        do {
            return try commitSteps()
        } catch {
            store.metrics.rejected.increment()
            abandon()
            throw error
        }
    }

    private func commitSteps() throws(StoreError) -> BlobRecord {
        // 1. Durable bytes.
        try POSIX.fsync(fd, path: relativePath)
        close(fd)
        closed = true
        // 2. Verify.
        let digests = hasher.finalize()
        let digest = BlobDigest(trusted: digests.sha256)
        if let size = record.expectedSize, size != offset { throw .sizeMismatch(expected: size, actual: offset) }
        if let expected = record.expectedSHA256, expected != digest.hex {
            throw .digestMismatch(expected: expected, actual: digest.hex)
        }
        if let quota = store.configuration.quotaBytes, try store.blob(digest) == nil {
            let pinned = try store.pinnedBytes()
            guard offset <= quota - pinned else { throw .quotaExceeded(size: offset, quota: quota, pinned: pinned) }
        }
        // 3. Rename into blobs/ and make the name durable.
        let fanout = "\(store.blobsRoot)/\(digest.fanout)"
        if try POSIX.makeDirectory(fanout) { try POSIX.fsyncDirectory(store.blobsRoot) }
        try POSIX.rename(path, store.path(of: digest))
        try POSIX.fsyncDirectory(fanout)
        try POSIX.fsyncDirectory(store.partialRoot)
        // 4. Commit the catalog row; only now is the blob visible.
        let time = store.now()
        let committed = BlobRecord(sha256: digest.hex, size: offset, addedAt: time, lastAccessAt: time, sha1: digests.sha1, md5: digests.md5)
        let id = record.id
        let result = try store.catalog.write { db -> BlobRecord in
            try PartialRecord.deleteOne(db, key: id)
            if var existing = try BlobRecord.fetchOne(db, key: digest.hex) {
                if existing.sha1 == nil || existing.md5 == nil {
                    (existing.sha1, existing.md5) = (digests.sha1, digests.md5)
                    try existing.update(db)
                }
                return existing
            }
            try committed.insert(db)
            return committed
        }
        store.metrics.adds.increment()
        // Over quota: evict others (never this blob); failures here do not undo the add.
        do { try store.enforceQuota(keeping: digest) } catch {
            store.logger.error("quota enforcement failed", metadata: ["error": "\(error)"])
        }
        try? store.refreshGauges()
        return result
    }

    /// Drops the partial: its file and its catalog row. Safe to call more than once.
    public func abandon() {
        if !closed {
            close(fd)
            closed = true
        }
        try? POSIX.unlink(path)
        let id = record.id
        _ = try? store.catalog.write { db in try PartialRecord.deleteOne(db, key: id) }
    }

    private var relativePath: String { "partial/\(record.id)" }
}

/// SHA-256 (the content address, checked against the signed metadata) with SHA-1 and MD5
/// alongside: transport checksums some device clients compare (hawkBit DDI's `hashes`), computed
/// in the same pass so a blob is never read again for them. SHA-256 runs on the writer's thread;
/// SHA-1 and MD5 on a queue of their own (a second core), fed in 256 KiB batches, at most eight
/// batches ahead, so ingest costs little more than SHA-256 and the write.
struct ContentHashers {
    private var sha256 = SHA256()
    private let transport = TransportHasher()

    mutating func update(bufferPointer bytes: UnsafeRawBufferPointer) {
        sha256.update(bufferPointer: bytes)
        transport.update(bytes)
    }

    func finalize() -> (sha256: String, sha1: String, md5: String) {
        let (sha1, md5) = transport.finalize()
        return (hexString(sha256.finalize()), sha1, md5)
    }
}

/// SHA-1 and MD5 on their own serial queue. Not shared: one writer feeds it, then finalizes.
final class TransportHasher: @unchecked Sendable {
    // @unchecked: `sha1`/`md5` are touched only on `queue`; `pending` only by the one writer.
    private var sha1 = Insecure.SHA1()
    private var md5 = Insecure.MD5()
    private var pending: [UInt8] = []
    private let queue = DispatchQueue(label: "otamesh.store.transport-hash")
    private let slots = DispatchSemaphore(value: 8)
    static let batch = 256 << 10

    func update(_ bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
        if pending.count >= Self.batch { flush() }
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        let chunk = pending
        pending.removeAll(keepingCapacity: true)
        slots.wait()
        queue.async { [self] in
            chunk.withUnsafeBytes { bytes in
                sha1.update(bufferPointer: bytes)
                md5.update(bufferPointer: bytes)
            }
            slots.signal()
        }
    }

    func finalize() -> (sha1: String, md5: String) {
        flush()
        return queue.sync { (hexString(sha1.finalize()), hexString(md5.finalize())) }
    }
}
