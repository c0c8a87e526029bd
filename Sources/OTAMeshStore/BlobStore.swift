import Crypto
import GRDB
import Logging
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
import OTAMeshCommon
#endif

/// Where and how a store keeps its data.
public struct StoreConfiguration: Sendable {
    /// The data directory (`catalog.sqlite`, `blobs/`, `partial/`, `quarantine/`, `lock`).
    public var directory: String
    /// Most bytes committed blobs may take; unpinned blobs are evicted least recently used
    /// first to stay under it. nil = no limit.
    public var quotaBytes: Int64?
    /// Partials untouched for longer than this are dropped by ``BlobStore/collectGarbage()``.
    public var partialMaxAge: Double

    public init(directory: String, quotaBytes: Int64? = nil, partialMaxAge: Double = 7 * 86_400) {
        self.directory = directory
        self.quotaBytes = quotaBytes
        self.partialMaxAge = partialMaxAge
    }
}

/// The verified, content-addressed blob cache.
///
/// Invariant: a blob is listed and served only after it was completely written, fsynced,
/// verified against its SHA-256 (and the caller's expected digest/length), renamed into
/// `blobs/sha256/ab/<digest>`, the directory fsynced, and its catalog row committed — in
/// that order. Opening the store for writing reconciles disk and catalog after a crash.
public final class BlobStore: Sendable {
    /// How the store is opened.
    public enum Mode: Sendable {
        /// Takes the data directory lock and reconciles; required for any change.
        case readWrite
        /// No lock, no reconciliation, no changes: for `cache ls` while an agent runs.
        case readOnly
    }

    public let configuration: StoreConfiguration
    let catalog: Catalog
    let lock: DataDirectoryLock?
    let logger: Logger
    /// Dates of blobs, accesses and partials; the catalog keeps them as seconds (REAL).
    let clock: WallClock
    func now() -> Double { clock.now().seconds }
    let metrics: StoreMetrics
    let pendingAccesses = Mutex<[String: Double]>([:])

    var directory: String { configuration.directory }
    var blobsRoot: String { directory + "/blobs/sha256" }
    var partialRoot: String { directory + "/partial" }
    var quarantineRoot: String { directory + "/quarantine" }

    /// Opens (creating if needed) the store in `configuration.directory`.
    public init(
        configuration: StoreConfiguration, mode: Mode = .readWrite, logger: Logger = Logger(label: "otamesh.store"),
        clock: WallClock = .system
    ) throws(StoreError) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.metrics = StoreMetrics()
        let dir = configuration.directory
        switch mode {
        case .readWrite:
            try POSIX.makeDirectory(dir)
            guard access(dir, R_OK | W_OK | X_OK) == 0 else {
                throw .unusableDirectory(path: dir, reason: "not readable and writable (\(errnoName(errno)))")
            }
            lock = try DataDirectoryLock(directory: dir)
            for sub in ["/blobs", "/blobs/sha256", "/partial", "/quarantine"] { try POSIX.makeDirectory(dir + sub) }
            catalog = try Catalog(path: dir + "/catalog.sqlite")
            try reconcile()
        case .readOnly:
            guard POSIX.isDirectory(dir) else { throw .unusableDirectory(path: dir, reason: "does not exist") }
            guard (try POSIX.fileSize(dir + "/catalog.sqlite")) != nil else {
                throw .unusableDirectory(path: dir, reason: "holds no catalog.sqlite")
            }
            lock = nil
            catalog = try Catalog(path: dir + "/catalog.sqlite", readOnly: true)
        }
        try refreshGauges()
    }

    deinit { try? flushAccesses() }

    // MARK: Paths

    /// Where a committed blob's bytes live.
    public func path(of digest: BlobDigest) -> String {
        "\(blobsRoot)/\(digest.fanout)/\(digest.hex)"
    }

    /// ``path(of:)`` for a digest the catalog listed (lower-case hex).
    public func path(ofHex hex: String) -> String {
        "\(blobsRoot)/\(hex.prefix(2))/\(hex)"
    }

    func partialPath(_ id: String) -> String { "\(partialRoot)/\(id)" }

    // MARK: Reading

    /// The committed blob with this digest, or nil.
    public func blob(_ digest: BlobDigest) throws(StoreError) -> BlobRecord? {
        try catalog.blob(digest)
    }

    /// Every committed blob, by digest.
    public func list() throws(StoreError) -> [BlobRecord] {
        try catalog.blobs()
    }

    /// Partials in flight (resumable).
    public func partials() throws(StoreError) -> [PartialRecord] {
        try catalog.partials()
    }

    /// Count and bytes of committed blobs.
    public func totals() throws(StoreError) -> (count: Int, bytes: Int64) {
        try catalog.totals()
    }

    /// Opens a committed blob for reading and marks it used (for LRU). Throws
    /// ``StoreError/notFound(digest:)`` unless the catalog has committed it.
    public func open(_ digest: BlobDigest) throws(StoreError) -> BlobHandle {
        guard let record = try catalog.blob(digest) else { throw .notFound(digest: digest.hex) }
        let path = path(of: digest)
        let fd = try POSIX.open(path, O_RDONLY)
        noteAccess(digest)
        return BlobHandle(fd: fd, path: path, record: record)
    }

    /// Reads a whole committed blob into memory (small blobs: metadata, manifests, tests).
    public func read(_ digest: BlobDigest) throws(StoreError) -> [UInt8] {
        let handle = try open(digest)
        return try handle.readAll()
    }

    /// Changes whenever a blob is committed or removed, so a reader holding a copy of the
    /// catalog (the device server) knows when to reload it.
    public var generation: Int { catalog.generation.value.load(ordering: .acquiring) }

    /// Records that a blob was read (for LRU) in memory; ``flushAccesses()`` writes the batch, so
    /// serving a blob costs no database write.
    public func noteAccess(_ digest: BlobDigest) {
        guard lock != nil else { return }
        let time = now()
        pendingAccesses.withLock { $0[digest.hex] = time }
    }

    /// Writes the access times noted since the last flush in one transaction.
    public func flushAccesses() throws(StoreError) {
        let pending = pendingAccesses.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
        guard !pending.isEmpty else { return }
        try catalog.write(changesBlobs: false) { db in
            for (hex, time) in pending {
                try db.execute(sql: "UPDATE blob SET lastAccessAt = MAX(lastAccessAt, ?) WHERE sha256 = ?", arguments: [time, hex])
            }
        }
    }

    // MARK: Adding

    /// The outcome of ``beginIngest(expected:)``.
    public enum IngestStart {
        /// The content is already committed; nothing to receive.
        case present(BlobRecord)
        /// Receive the bytes from ``Ingest/offset`` on.
        case receive(Ingest)
    }

    /// Starts (or, when `expected` names content whose partial survives, resumes) receiving a blob.
    public func beginIngest(expected: ExpectedContent? = nil) throws(StoreError) -> IngestStart {
        try requireWritable()
        if let expected {
            if let record = try catalog.blob(expected.digest) { return .present(record) }
            if let size = expected.size { try checkFits(size: size) }
        }
        let id = expected.map { "sha256-\($0.digest.hex)" } ?? "tmp-\(Self.randomID())"
        let fresh = PartialRecord(id: id, expectedSHA256: expected?.digest.hex, expectedSize: expected?.size, createdAt: now())
        let (record, resumable) = try catalog.write { db -> (PartialRecord, Bool) in
            guard var existing = try PartialRecord.fetchOne(db, key: id) else {
                try fresh.insert(db)
                return (fresh, false)
            }
            switch (existing.expectedSize, expected?.size) {
            case let (old?, new?) where old != new:
                // Same digest, different claimed length: one of them is wrong; start over.
                try PartialRecord.deleteOne(db, key: id)
                try fresh.insert(db)
                return (fresh, false)
            case (nil, let new?):
                existing.expectedSize = new
                try existing.update(db)
                return (existing, true)
            default:
                return (existing, true)
            }
        }
        if !resumable {
            // Any file under this name belongs to no resumable ingest (never true for tmp- ids).
            try POSIX.unlink(partialPath(id))
        }
        return .receive(try Ingest(store: self, record: record))
    }

    /// What an add did.
    public struct AddOutcome: Sendable, Equatable {
        public let record: BlobRecord
        /// True when the content was already committed (nothing was written).
        public let alreadyPresent: Bool
        /// Bytes taken over from an interrupted earlier add of the same expected digest.
        public let resumedBytes: Int64
    }

    /// Adds the file at `path`, streaming it (hash while writing). Resumes a partial of the
    /// same expected digest. Returns the committed record (or the existing one).
    @discardableResult
    public func add(contentsOf path: String, expected: ExpectedContent? = nil) throws(StoreError) -> BlobRecord {
        try addFile(path, expected: expected).record
    }

    /// ``add(contentsOf:expected:)`` that also says whether it resumed or found the blob present.
    public func addFile(_ path: String, expected: ExpectedContent? = nil) throws(StoreError) -> AddOutcome {
        let fd = try POSIX.open(path, O_RDONLY, operation: "open source")
        defer { close(fd) }
        let ingest: Ingest
        switch try beginIngest(expected: expected) {
        case .present(let record): return AddOutcome(record: record, alreadyPresent: true, resumedBytes: 0)
        case .receive(let started): ingest = started
        }
        do {
            if ingest.offset > 0, lseek(fd, off_t(ingest.offset), SEEK_SET) < 0 {
                throw StoreError.io(operation: "seek", path: path, errno: errno)
            }
            var buffer = [UInt8](repeating: 0, count: Ingest.bufferSize)
            while true {
                let n = try POSIX.read(fd, into: &buffer, path: path)
                if n == 0 { break }
                try ingest.write(buffer[0..<n])
            }
            return AddOutcome(record: try ingest.commit(), alreadyPresent: false, resumedBytes: ingest.resumedBytes)
        } catch {
            ingest.abandon()
            throw StoreError.wrapping(error)
        }
    }

    /// Adds bytes held in memory.
    @discardableResult
    public func add(bytes: [UInt8], expected: ExpectedContent? = nil) throws(StoreError) -> BlobRecord {
        switch try beginIngest(expected: expected) {
        case .present(let record): return record
        case .receive(let ingest):
            do {
                if ingest.offset > 0 {
                    // A resumed partial: verify the prefix we already hold matches these bytes' length.
                    guard ingest.offset <= Int64(bytes.count) else {
                        throw StoreError.sizeMismatch(expected: Int64(bytes.count), actual: ingest.offset)
                    }
                }
                try ingest.write(bytes[Int(ingest.offset)...])
                return try ingest.commit()
            } catch {
                ingest.abandon()
                throw StoreError.wrapping(error)
            }
        }
    }

    // MARK: Pins

    /// Pins a committed blob under `label` so eviction never removes it.
    public func pin(_ digest: BlobDigest, label: String) throws(StoreError) {
        try requireWritable()
        guard try catalog.blob(digest) != nil else { throw .notFound(digest: digest.hex) }
        try catalog.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO pin (sha256, label) VALUES (?, ?)", arguments: [digest.hex, label])
        }
    }

    /// Removes the pin `label` (or, with nil, every pin) from a blob.
    public func unpin(_ digest: BlobDigest, label: String? = nil) throws(StoreError) {
        try requireWritable()
        guard try catalog.blob(digest) != nil else { throw .notFound(digest: digest.hex) }
        try catalog.write { db in
            if let label {
                try db.execute(sql: "DELETE FROM pin WHERE sha256 = ? AND label = ?", arguments: [digest.hex, label])
            } else {
                try db.execute(sql: "DELETE FROM pin WHERE sha256 = ?", arguments: [digest.hex])
            }
        }
    }

    /// Refuses a blob of `size` bytes that could never fit the quota next to the pinned blobs
    /// (as ``beginIngest(expected:)`` would), before anything is downloaded for it.
    public func checkFits(size: Int64) throws(StoreError) {
        guard let quota = configuration.quotaBytes else { return }
        let pinned = try pinnedBytes()
        guard size <= quota - pinned else { throw .quotaExceeded(size: size, quota: quota, pinned: pinned) }
    }

    func pinnedBytes() throws(StoreError) -> Int64 {
        try catalog.read { db in
            try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(size), 0) FROM blob WHERE sha256 IN (SELECT sha256 FROM pin)") ?? 0
        }
    }

    // MARK: Removal

    /// Removes a committed blob: the catalog row first, then the file, so a crash in between
    /// leaves a file that reconciliation re-verifies and re-adopts, never a row without bytes.
    func evict(_ digest: BlobDigest) throws(StoreError) {
        try catalog.write { db in try BlobRecord.deleteOne(db, key: digest.hex) }
        try POSIX.unlink(path(of: digest))
        metrics.evictions.increment()
    }

    /// Removes a blob unless it is pinned. Returns false when pinned.
    @discardableResult
    public func remove(_ digest: BlobDigest) throws(StoreError) -> Bool {
        try requireWritable()
        guard let record = try catalog.blob(digest) else { throw .notFound(digest: digest.hex) }
        guard !record.isPinned else { return false }
        try evict(digest)
        try refreshGauges()
        return true
    }

    /// Evicts unpinned blobs, least recently used first, until the total fits `quota`
    /// (never the blob named by `keeping`). Returns the evicted records.
    @discardableResult
    func enforceQuota(keeping: BlobDigest? = nil, quota: Int64? = nil) throws(StoreError) -> [BlobRecord] {
        guard let quota = quota ?? configuration.quotaBytes else { return [] }
        try flushAccesses()
        var total = try catalog.totals().bytes
        guard total > quota else { return [] }
        let candidates = try catalog.read { db in
            try BlobRecord.fetchAll(
                db, sql: "SELECT * FROM blob WHERE sha256 NOT IN (SELECT sha256 FROM pin) ORDER BY lastAccessAt, sha256")
        }
        var evicted: [BlobRecord] = []
        for record in candidates where total > quota && record.sha256 != keeping?.hex {
            try evict(record.digest)
            total -= record.size
            evicted.append(record)
            logger.info("evicted to fit quota", metadata: ["blob.sha256": "\(record.sha256)", "blob.size": "\(record.size)"])
        }
        return evicted
    }

    func requireWritable() throws(StoreError) {
        guard lock != nil else { throw .unusableDirectory(path: directory, reason: "opened read-only") }
    }

    func refreshGauges() throws(StoreError) {
        let totals = try catalog.totals()
        metrics.blobCount.record(totals.count)
        metrics.bytes.record(totals.bytes)
    }

    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(generator.next() as UInt32, radix: 16) }.joined()
    }
}

/// An open, committed blob. Close it (or let it go) when done.
public final class BlobHandle: @unchecked Sendable {
    // @unchecked: the descriptor is only read; closing happens once in deinit.
    public let fd: Int32
    public let path: String
    public let record: BlobRecord

    init(fd: Int32, path: String, record: BlobRecord) {
        self.fd = fd
        self.path = path
        self.record = record
    }

    deinit { close(fd) }

    public func readAll() throws(StoreError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(record.size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + offset, $0.count - offset, off_t(offset)) }
            if n < 0 { if errno == EINTR { continue }; throw .io(operation: "read", path: path, errno: errno) }
            if n == 0 { throw .sizeMismatch(expected: record.size, actual: Int64(offset)) }
            offset += n
        }
        return bytes
    }
}

/// The store's metrics (swift-metrics; exported by the agent's Prometheus endpoint).
struct StoreMetrics: Sendable {
    let adds = Counter(label: "otamesh_cache_adds_total")
    let resumes = Counter(label: "otamesh_cache_resumes_total")
    let rejected = Counter(label: "otamesh_cache_rejected_adds_total")
    let verificationFailures = Counter(label: "otamesh_cache_verification_failures_total")
    let evictions = Counter(label: "otamesh_cache_evictions_total")
    let blobCount = Gauge(label: "otamesh_cache_blobs")
    let bytes = Gauge(label: "otamesh_cache_bytes")
}
