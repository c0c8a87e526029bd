import GRDB
import Synchronization

/// A committed blob as the catalog records it.
public struct BlobRecord: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "blob"

    public var sha256: String
    public var size: Int64
    /// Seconds since the Unix epoch.
    public var addedAt: Double
    public var lastAccessAt: Double
    /// Labels that pin the blob against eviction (empty when unpinned). Not a column.
    public var pins: [String] = []
    /// Transport checksums (hex) recorded at ingest for clients that compare them (hawkBit DDI);
    /// nil for blobs a store older than them committed (``BlobStore/transportDigests(_:)``).
    public var sha1: String?
    public var md5: String?

    enum CodingKeys: String, CodingKey { case sha256, size, addedAt, lastAccessAt, sha1, md5 }

    public var digest: BlobDigest { BlobDigest(trusted: sha256) }
    public var isPinned: Bool { !pins.isEmpty }

    public init(
        sha256: String, size: Int64, addedAt: Double, lastAccessAt: Double, pins: [String] = [], sha1: String? = nil, md5: String? = nil
    ) {
        self.sha256 = sha256
        self.size = size
        self.addedAt = addedAt
        self.lastAccessAt = lastAccessAt
        self.pins = pins
        self.sha1 = sha1
        self.md5 = md5
    }
}

/// A partially received blob (resumable).
public struct PartialRecord: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "partial"

    /// File name under `partial/`.
    public var id: String
    public var expectedSHA256: String?
    public var expectedSize: Int64?
    public var createdAt: Double
    /// The server's validator (strong ETag or Last-Modified) for the bytes received so far, so a
    /// resumed download can send If-Range (nil: none known).
    public var validator: String?

    public init(id: String, expectedSHA256: String?, expectedSize: Int64?, createdAt: Double, validator: String? = nil) {
        self.id = id
        self.expectedSHA256 = expectedSHA256
        self.expectedSize = expectedSize
        self.createdAt = createdAt
        self.validator = validator
    }
}

/// The SQLite catalog: which blobs are committed, their pins and the partials in flight.
/// All access goes through one GRDB `DatabasePool` in WAL mode.
struct Catalog: Sendable {
    let pool: DatabasePool
    let path: String
    /// Bumped by every write that may change which blobs are committed (not by access times).
    let generation = Generation()

    final class Generation: Sendable {
        let value = Atomic<Int>(0)
    }

    init(path: String, readOnly: Bool = false) throws(StoreError) {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(10)
        configuration.label = "otamesh.catalog"
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            if !readOnly { try Self.migrator.migrate(pool) }
        } catch {
            throw .catalog(path: path, reason: Self.describe(error))
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: blobs, pins, partials") { db in
            try db.create(table: "blob") { t in
                t.primaryKey("sha256", .text)
                t.column("size", .integer).notNull()
                t.column("addedAt", .double).notNull()
                t.column("lastAccessAt", .double).notNull().indexed()
            }
            try db.create(table: "pin") { t in
                t.column("sha256", .text).notNull().references("blob", onDelete: .cascade)
                t.column("label", .text).notNull()
                t.primaryKey(["sha256", "label"])
            }
            try db.create(table: "partial") { t in
                t.primaryKey("id", .text)
                t.column("expectedSHA256", .text).unique()
                t.column("expectedSize", .integer)
                t.column("createdAt", .double).notNull()
            }
        }
        migrator.registerMigration("v2: partial validators") { db in
            try db.alter(table: "partial") { t in t.add(column: "validator", .text) }
        }
        migrator.registerMigration("v3: transport checksums") { db in
            try db.alter(table: "blob") { t in
                t.add(column: "sha1", .text)
                t.add(column: "md5", .text)
            }
        }
        return migrator
    }

    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do { return try pool.read(body) } catch { throw .catalog(path: path, reason: Self.describe(error)) }
    }

    @discardableResult
    func write<T>(changesBlobs: Bool = true, _ body: (Database) throws -> T) throws(StoreError) -> T {
        defer { if changesBlobs { generation.value.add(1, ordering: .releasing) } }
        do { return try pool.write(body) } catch { throw .catalog(path: path, reason: Self.describe(error)) }
    }

    static func describe(_ error: any Error) -> String { describeDatabaseError(error) }

    // MARK: Queries

    func blob(_ digest: BlobDigest) throws(StoreError) -> BlobRecord? {
        try read { db in try Self.withPins(db, BlobRecord.fetchOne(db, key: digest.hex)) }
    }

    func blobs() throws(StoreError) -> [BlobRecord] {
        try read { db in
            let pins = try Self.pinMap(db)
            return try BlobRecord.order(Column("sha256")).fetchAll(db).map { record in
                var record = record
                record.pins = pins[record.sha256] ?? []
                return record
            }
        }
    }

    func partials() throws(StoreError) -> [PartialRecord] {
        try read { db in try PartialRecord.order(Column("createdAt")).fetchAll(db) }
    }

    /// Count and total bytes of committed blobs.
    func totals() throws(StoreError) -> (count: Int, bytes: Int64) {
        try read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blob")
            return (row?[0] ?? 0, row?[1] ?? 0)
        }
    }

    static func withPins(_ db: Database, _ record: BlobRecord?) throws -> BlobRecord? {
        guard var record else { return nil }
        record.pins = try String.fetchAll(db, sql: "SELECT label FROM pin WHERE sha256 = ? ORDER BY label", arguments: [record.sha256])
        return record
    }

    static func pinMap(_ db: Database) throws -> [String: [String]] {
        var map: [String: [String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT sha256, label FROM pin ORDER BY label") {
            map[row[0], default: []].append(row[1])
        }
        return map
    }
}

/// A GRDB/SQLite error as one line (SQLite's message without GRDB's decoration).
public func describeDatabaseError(_ error: any Error) -> String {
    if let db = error as? DatabaseError { return db.message ?? db.description }
    return String(describing: error)
}
