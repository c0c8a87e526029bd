import OTAMeshGossip
import OTAMeshStore

#if canImport(Glibc)
import Glibc
#endif

/// The gateway's own durable gossip records on disk (the ``RecordJournal`` format), at
/// `DATA/gossip/records.journal`: every record the gateway writes, except those it rebuilds at
/// start anyway (holdings, device summaries), is appended before it is gossiped, read back when
/// the agent starts (``Mesh``), and the file is rewritten when superseded entries make up most
/// of it. Appends reach the kernel at once (a SIGKILL loses nothing); ``sync()`` makes them
/// durable against power loss, once a second. Used only under the mesh's state lock.
struct RecordJournalFile: Sendable {
    let path: String
    let owner: String
    var fd: Int32 = -1
    /// Bytes in the file, and per key the size of its newest entry (what a rewrite keeps).
    var fileBytes = 0
    var newest: [String: ReplicatedRecords.Record] = [:]
    var liveBytes = 0
    /// Appends since the last fsync.
    var unsynced = false
    /// An append failed (a full disk): the file is missing records until a rewrite succeeds.
    var behind = false

    /// Whether a record is journalled: not when its channel is rebuilt from the gateway's own
    /// state at start (holdings, device summaries).
    static func isDurable(_ key: String) -> Bool { MeshChannels.all.isDurable(key) }

    /// Reads the journal (a missing one is empty), rewrites it from what it held — dropping a
    /// torn last entry, and keeping a damaged file aside as `…damaged` first — and opens it for
    /// appending. Returns the file and this owner's records. `warn` hears what was wrong.
    static func open(path: String, owner: String, warn: (String) -> Void) throws(StoreError) -> (RecordJournalFile, [ReplicatedRecords.Record]) {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty { try POSIX.makeDirectory(directory) }
        var bytes: [UInt8] = []
        if let size = try POSIX.fileSize(path) {
            guard size <= maxFileBytes else {
                throw .unusableDirectory(path: path, reason: "records journal of \(size) bytes, more than \(maxFileBytes): not one this gateway wrote")
            }
            let fd = try POSIX.open(path, O_RDONLY)
            defer { Glibc.close(fd) }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = try POSIX.read(fd, into: &chunk, path: path)
                if n == 0 { break }
                bytes += chunk[0..<n]
            }
        }
        let loaded = RecordJournal.decode(bytes)
        if let problem = loaded.problem {
            warn("\(path): \(problem); kept the \(loaded.entries) entries before it")
            if !loaded.tornTail {
                // More than a torn tail: keep the file for a look before rewriting it.
                try POSIX.rename(path, path + ".damaged")
            }
        }
        let own = loaded.records.filter { $0.owner == owner }
        if own.count < loaded.records.count {
            warn("\(path): \(loaded.records.count - own.count) records of another node name ignored (this gateway is \(owner))")
        }
        var journal = RecordJournalFile(path: path, owner: owner)
        for record in own { journal.note(record, size: RecordJournal.entry(record)?.count ?? 0) }
        try journal.rewrite()
        return (journal, own)
    }

    /// Largest journal read at start.
    static let maxFileBytes: Int64 = 256 << 20

    mutating func note(_ record: ReplicatedRecords.Record, size: Int) {
        if let old = newest[record.key] { liveBytes -= RecordJournal.entry(old)?.count ?? 0 }
        newest[record.key] = record
        liveBytes += size
    }

    /// Appends one record this gateway just wrote. A failure (a full disk) is returned and
    /// leaves the file as it was; the next ``sync()`` rewrites it whole once there is room.
    mutating func append(_ record: ReplicatedRecords.Record) throws(StoreError) {
        guard Self.isDurable(record.key), let entry = RecordJournal.entry(record) else { return }
        note(record, size: entry.count)
        if behind || fileBytes > max(2 * liveBytes, 1 << 20) {
            try rewrite()
            return
        }
        do throws(StoreError) {
            try Self.write(entry, to: fd, path: path)
        } catch {
            // A partial entry would hide every later one from the next start: cut it off.
            _ = ftruncate(fd, off_t(fileBytes))
            behind = true
            throw error
        }
        fileBytes += entry.count
        unsynced = true
    }

    /// Makes the appends durable (fsync), or retries a rewrite the disk refused.
    mutating func sync() throws(StoreError) {
        if behind { return try rewrite() }
        guard unsynced, fd >= 0 else { return }
        try POSIX.fsync(fd, path: path)
        unsynced = false
    }

    /// Writes every newest record to a new file and puts it in place (fsynced, then renamed).
    mutating func rewrite() throws(StoreError) {
        let temporary = path + ".tmp"
        let records = newest.values.sorted { $0.key < $1.key }
        let bytes = RecordJournal.file(records)
        let out = try POSIX.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        do throws(StoreError) {
            try Self.write(bytes, to: out, path: temporary)
            try POSIX.fsync(out, path: temporary)
            Glibc.close(out)
            try POSIX.rename(temporary, path)
            let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            try POSIX.fsyncDirectory(directory.isEmpty ? "." : directory)
        } catch {
            Glibc.close(out)
            _ = unlink(temporary)
            behind = true
            throw error
        }
        let appender = try POSIX.open(path, O_WRONLY | O_APPEND)
        if fd >= 0 { Glibc.close(fd) }
        fd = appender
        fileBytes = bytes.count
        liveBytes = bytes.count - RecordJournal.magic.count
        unsynced = false
        behind = false
    }

    static func write(_ bytes: [UInt8], to fd: Int32, path: String) throws(StoreError) {
        var failure: StoreError?
        bytes.withUnsafeBytes { buffer in
            do throws(StoreError) { try POSIX.writeAll(fd, buffer, path: path) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    mutating func close() {
        if fd >= 0 {
            _ = try? sync()
            Glibc.close(fd)
            fd = -1
        }
    }
}
