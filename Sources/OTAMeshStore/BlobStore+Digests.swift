import GRDB

#if canImport(Glibc)
import Glibc
#endif

extension BlobStore {
    /// The blob's SHA-1 and MD5 (hex): as recorded at ingest, else computed from the file once
    /// and recorded (blobs committed by a store older than these columns). Blocking: reads the
    /// whole file at most once per blob. Nil when the store does not hold the blob.
    public func transportDigests(_ digest: BlobDigest) throws(StoreError) -> (sha1: String, md5: String)? {
        guard let record = try blob(digest) else { return nil }
        if let sha1 = record.sha1, let md5 = record.md5 { return (sha1, md5) }
        let path = path(of: digest)
        let fd = try POSIX.open(path, O_RDONLY, mode: 0, operation: "open blob")
        defer { close(fd) }
        var hashers = ContentHashers()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "read blob", path: path, errno: errno)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hashers.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        let digests = hashers.finalize()
        // The file is not this blob any more (changed on disk): record nothing; the store's
        // verification quarantines it.
        guard digests.sha256 == digest.hex else { throw .digestMismatch(expected: digest.hex, actual: digests.sha256) }
        try catalog.write(changesBlobs: false) { db in
            try db.execute(sql: "UPDATE blob SET sha1 = ?, md5 = ? WHERE sha256 = ?", arguments: [digests.sha1, digests.md5, digest.hex])
        }
        return (digests.sha1, digests.md5)
    }
}
