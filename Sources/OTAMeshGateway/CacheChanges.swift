import OTAMeshStore

/// A change `otamesh cache` makes to a gateway's blob cache. While an agent runs on the data
/// directory it goes through the agent's admin API (`POST /api/v1/cache/changes`), which applies
/// it to the store it serves from; otherwise the CLI applies it itself, holding the lock. Either
/// way the same ``CacheChanges/apply(_:to:)`` runs, so the output is the same.
public enum CacheChange: Codable, Sendable, Equatable {
    /// Re-hash every blob; quarantine any that changed on disk.
    case verify
    /// Drop stale partials and evict unpinned blobs down to the quota (`quotaBytes` for this run).
    case collectGarbage(quotaBytes: Int64?)
    case pin(sha256: String, label: String)
    /// Without a label: every pin of the blob.
    case unpin(sha256: String, label: String?)
    case remove(sha256: String)
}

/// What a cache change did: lines for standard output, problems for standard error; `failed`:
/// the command exits 1.
public struct CacheChangeReport: Codable, Sendable, Equatable {
    public var lines: [String] = []
    public var problems: [String] = []
    public var failed = false
    public init() {}
}

public enum CacheChanges {
    /// The largest file `otamesh cache add` sends to a running agent (it arrives in memory).
    public static let maxUploadBytes = 512 << 20

    public struct TooLarge: Error, CustomStringConvertible {
        public let file: String
        public init(file: String) { self.file = file }
        public var description: String {
            "\(file) is larger than the \(maxUploadBytes) bytes a running agent takes: stop the agent and run otamesh cache add again"
        }
    }

    /// Applies `change` to `store`. A malformed digest or a store failure throws and changes nothing.
    public static func apply(_ change: CacheChange, to store: BlobStore) throws(StoreError) -> CacheChangeReport {
        var report = CacheChangeReport()
        switch change {
        case .verify:
            let result = try store.verify()
            for digest in result.corrupt { report.problems.append("sha256:\(digest): content no longer matches its digest; quarantined") }
            for digest in result.missing { report.problems.append("sha256:\(digest): file missing; unlisted") }
            report.lines.append(
                "verified \(result.checked) blobs (\(result.bytes) bytes): \(result.corrupt.count) corrupt, \(result.missing.count) missing")
            report.failed = !result.corrupt.isEmpty || !result.missing.isEmpty
        case .collectGarbage(let quota):
            let result = try store.collectGarbage(quotaBytes: quota)
            for digest in result.evicted { report.lines.append("evicted sha256:\(digest)") }
            for id in result.stalePartials { report.lines.append("dropped partial \(id)") }
            report.lines.append(
                "evicted \(result.evicted.count) blobs (\(result.evictedBytes) bytes), dropped \(result.stalePartials.count) partials")
        case let .pin(hex, label):
            try store.pin(try BlobDigest(hex: hex), label: label)
        case let .unpin(hex, label):
            try store.unpin(try BlobDigest(hex: hex), label: label)
        case .remove(let hex):
            if try !store.remove(try BlobDigest(hex: hex)) {
                report.problems.append("sha256:\(hex) is pinned; unpin it first")
                report.failed = true
            }
        }
        return report
    }
}

/// What `otamesh cache add` did (its `--json` output, and the admin API's answer).
public struct CacheAddResult: Codable, Sendable, Equatable {
    public let blob: CacheEntry
    /// True when the content was already in the store (nothing was written).
    public let alreadyPresent: Bool
    /// Bytes taken over from an interrupted earlier add of the same digest.
    public let resumedFrom: Int64

    public init(blob: CacheEntry, alreadyPresent: Bool, resumedFrom: Int64) {
        self.blob = blob
        self.alreadyPresent = alreadyPresent
        self.resumedFrom = resumedFrom
    }
}
