#if canImport(Glibc)
import Glibc
#endif

/// Why a store operation failed. Each case renders as one line naming the path or blob,
/// the operation and the cause, e.g.
/// `write partial/sha256-ab12…: No space left on device (ENOSPC)`.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// The content's SHA-256 is not the one the caller (or signed metadata) expected.
    case digestMismatch(expected: String, actual: String)
    /// The content's length is not the expected one.
    case sizeMismatch(expected: Int64, actual: Int64)
    /// More bytes arrived than the expected length allows.
    case exceedsExpectedSize(expected: Int64)
    /// Adding the blob would exceed the quota even after evicting every unpinned blob.
    case quotaExceeded(size: Int64, quota: Int64, pinned: Int64)
    /// Another process holds the data directory.
    case locked(path: String, holder: String)
    /// No committed blob has this digest.
    case notFound(digest: String)
    /// A string that is not a lowercase 64-hex SHA-256.
    case invalidDigest(String)
    /// The catalog database failed.
    case catalog(path: String, reason: String)
    /// The data directory cannot be used (not a directory, unreadable, …).
    case unusableDirectory(path: String, reason: String)
    /// The ingest was already committed or abandoned.
    case ingestClosed

    public var description: String {
        switch self {
        case let .io(operation, path, code):
            "\(operation) \(path): \(String(cString: strerror(code))) (\(errnoName(code)))"
        case let .digestMismatch(expected, actual):
            "content sha256 mismatch: expected \(expected), got \(actual)"
        case let .sizeMismatch(expected, actual):
            "content length mismatch: expected \(expected) bytes, got \(actual)"
        case let .exceedsExpectedSize(expected):
            "content exceeds its expected length of \(expected) bytes"
        case let .quotaExceeded(size, quota, pinned):
            "blob of \(size) bytes does not fit the cache quota of \(quota) bytes (\(pinned) bytes pinned)"
        case let .locked(path, holder):
            "data directory \(path) is locked by \(holder)"
        case let .notFound(digest):
            "no blob sha256:\(digest) in the store"
        case let .invalidDigest(text):
            "not a sha256 digest (64 lowercase hex digits): \(text.prefix(80))"
        case let .catalog(path, reason):
            "catalog \(path): \(reason)"
        case let .unusableDirectory(path, reason):
            "data directory \(path): \(reason)"
        case .ingestClosed:
            "ingest already committed or abandoned"
        }
    }

    /// Narrows an error from a closure-taking API (which erases typed throws) back to a
    /// StoreError; anything else was not thrown by the store and is reported as such.
    static func wrapping(_ error: any Error) -> StoreError {
        (error as? StoreError) ?? .catalog(path: "-", reason: "unexpected error: \(error)")
    }

    /// True when the failure came from a full disk.
    public var isNoSpace: Bool {
        if case .io(_, _, let code) = self { return code == ENOSPC || code == EDQUOT }
        return false
    }
}

/// The symbolic name of common errno values, for error lines a user can search for.
func errnoName(_ code: Int32) -> String {
    switch code {
    case ENOENT: "ENOENT"
    case EACCES: "EACCES"
    case EPERM: "EPERM"
    case ENOSPC: "ENOSPC"
    case EDQUOT: "EDQUOT"
    case EROFS: "EROFS"
    case EIO: "EIO"
    case EEXIST: "EEXIST"
    case ENOTDIR: "ENOTDIR"
    case EISDIR: "EISDIR"
    case EWOULDBLOCK: "EWOULDBLOCK"
    case EMFILE: "EMFILE"
    case EFBIG: "EFBIG"
    default: "errno \(code)"
    }
}
