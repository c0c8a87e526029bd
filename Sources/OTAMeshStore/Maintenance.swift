import Crypto
import GRDB
import OTAMeshCommon

#if canImport(Glibc)
import Glibc
#endif

/// What reconciliation found when the store was opened.
public struct ReconcileReport: Sendable, Equatable {
    /// Verified blob files that had no catalog row (crash after rename, before commit); re-adopted.
    public var adopted: [String] = []
    /// Files in `blobs/` whose content does not match their name, or that are not blobs; moved to `quarantine/`.
    public var quarantined: [String] = []
    /// Catalog rows whose file was gone; removed.
    public var missing: [String] = []
    /// Files in `partial/` with no catalog row; removed.
    public var orphanPartials: [String] = []
}

/// What ``BlobStore/verify()`` found.
public struct VerifyReport: Sendable, Equatable {
    public var checked = 0
    public var bytes: Int64 = 0
    /// Blobs whose bytes no longer hash to their name; moved to `quarantine/` and unlisted.
    public var corrupt: [String] = []
    /// Blobs whose file was missing; unlisted.
    public var missing: [String] = []
}

/// What ``BlobStore/collectGarbage()`` removed.
public struct GarbageReport: Sendable, Equatable {
    public var evicted: [String] = []
    public var evictedBytes: Int64 = 0
    public var stalePartials: [String] = []
}

extension BlobStore {
    /// Brings disk and catalog into agreement after a crash (runs on every read-write open).
    ///
    /// - A blob file without a row is re-hashed: adopted if it matches its name (the crash
    ///   came between rename and commit), quarantined otherwise.
    /// - A row without a file is removed (and logged: it should never happen).
    /// - A partial file without a row is removed; a partial row without a file is removed.
    @discardableResult
    func reconcile() throws(StoreError) -> ReconcileReport {
        var report = ReconcileReport()
        let rows = Set(try catalog.read { db in try String.fetchAll(db, sql: "SELECT sha256 FROM blob") })
        var seen = Set<String>()
        for fanout in try POSIX.listDirectory(blobsRoot) {
            let dir = "\(blobsRoot)/\(fanout)"
            guard POSIX.isDirectory(dir) else {
                try quarantine(dir, name: fanout)
                report.quarantined.append(fanout)
                continue
            }
            for name in try POSIX.listDirectory(dir) {
                let file = "\(dir)/\(name)"
                guard let digest = try? BlobDigest(hex: name), digest.hex == name, digest.fanout == fanout else {
                    try quarantine(file, name: name)
                    report.quarantined.append(name)
                    continue
                }
                seen.insert(name)
                if rows.contains(name) { continue }
                let (actual, size) = try hashFile(file)
                if actual == name {
                    let time = now()
                    try catalog.write { db in
                        try BlobRecord(sha256: name, size: size, addedAt: time, lastAccessAt: time).insert(db, onConflict: .ignore)
                    }
                    report.adopted.append(name)
                } else {
                    try quarantine(file, name: name)
                    report.quarantined.append(name)
                }
            }
        }
        for name in rows.subtracting(seen).sorted() {
            try catalog.write { db in try BlobRecord.deleteOne(db, key: name) }
            report.missing.append(name)
            logger.error("catalogued blob is missing on disk; unlisted", metadata: ["blob.sha256": "\(name)"])
        }
        let partialRows = Set(try catalog.partials().map(\.id))
        let partialFiles = Set(try POSIX.listDirectory(partialRoot))
        for name in partialFiles.subtracting(partialRows).sorted() {
            try POSIX.unlink("\(partialRoot)/\(name)")
            report.orphanPartials.append(name)
        }
        let rowsWithoutFile = partialRows.subtracting(partialFiles)
        if !rowsWithoutFile.isEmpty {
            try catalog.write { db in
                for id in rowsWithoutFile { try PartialRecord.deleteOne(db, key: id) }
            }
        }
        if report != ReconcileReport() {
            logger.notice(
                "reconciled data directory",
                metadata: [
                    "store.adopted": "\(report.adopted.count)", "store.quarantined": "\(report.quarantined.count)",
                    "store.missing": "\(report.missing.count)", "store.orphanPartials": "\(report.orphanPartials.count)",
                ])
        }
        return report
    }

    /// Re-hashes every committed blob. Corrupt blobs are moved to `quarantine/` and unlisted,
    /// so they are never served again.
    public func verify() throws(StoreError) -> VerifyReport {
        try requireWritable()
        var report = VerifyReport()
        for record in try catalog.blobs() {
            let file = path(of: record.digest)
            guard (try POSIX.fileSize(file)) != nil else {
                try catalog.write { db in try BlobRecord.deleteOne(db, key: record.sha256) }
                report.missing.append(record.sha256)
                metrics.verificationFailures.increment()
                continue
            }
            let (actual, size) = try hashFile(file)
            report.checked += 1
            report.bytes += size
            if actual != record.sha256 || size != record.size {
                try catalog.write { db in try BlobRecord.deleteOne(db, key: record.sha256) }
                try quarantine(file, name: record.sha256)
                report.corrupt.append(record.sha256)
                metrics.verificationFailures.increment()
                logger.error(
                    "blob failed verification; quarantined",
                    metadata: ["blob.sha256": "\(record.sha256)", "blob.actual": "\(actual)"])
            }
        }
        try refreshGauges()
        return report
    }

    /// Drops stale partials and evicts unpinned blobs (least recently used first) down to the
    /// quota: `quotaBytes` for this run, else the configured one.
    public func collectGarbage(quotaBytes: Int64? = nil) throws(StoreError) -> GarbageReport {
        try requireWritable()
        var report = GarbageReport()
        let cutoff = now() - configuration.partialMaxAge
        for partial in try catalog.partials() where partial.createdAt < cutoff {
            try POSIX.unlink(partialPath(partial.id))
            try catalog.write { db in try PartialRecord.deleteOne(db, key: partial.id) }
            report.stalePartials.append(partial.id)
        }
        for record in try enforceQuota(quota: quotaBytes ?? configuration.quotaBytes) {
            report.evicted.append(record.sha256)
            report.evictedBytes += record.size
        }
        try refreshGauges()
        return report
    }

    /// Moves a file out of `blobs/` into `quarantine/` (kept for inspection, never served).
    func quarantine(_ file: String, name: String) throws(StoreError) {
        let target = "\(quarantineRoot)/\(name).\(Int(now()))"
        try POSIX.rename(file, target)
    }

    /// SHA-256 and length of a file, streamed.
    func hashFile(_ file: String) throws(StoreError) -> (String, Int64) {
        let fd = try POSIX.open(file, O_RDONLY)
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: Ingest.bufferSize)
        var total: Int64 = 0
        while true {
            let n = try POSIX.read(fd, into: &buffer, path: file)
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += Int64(n)
        }
        return (hexString(hasher.finalize()), total)
    }
}
