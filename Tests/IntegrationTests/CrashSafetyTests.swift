import Foundation
import OTAMeshCommon
import OTAMeshStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGKILLs `otamesh cache add` at random moments — from the first byte to the catalog
/// commit — at least 50 times, and after every kill reopens the store and checks what a
/// user relies on: it opens, every listed blob hashes to its name, nothing half-written is
/// listed or served, and the interrupted add resumes from the bytes already received.
@Suite("crash safety", .serialized)
struct CrashSafetyTests {
    static let kills = 60
    static let maxRounds = 200
    static let sourceSize = 6 << 20

    @Test("SIGKILL at random moments never corrupts the store and adds resume")
    func sigkill() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        var sources: [(path: String, digest: String, size: Int)] = []
        for index in 0..<3 {
            let bytes = patterned(Self.sourceSize + index * 4_097, seed: UInt64(100 + index))
            let path = dir.file("source-\(index).bin")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            sources.append((path, sha256Hex(bytes), bytes.count))
        }
        var rng = SplitMix64(seed: 0xC0FFEE)
        var killedMidWrite = 0
        var killedAfterWrite = 0
        var completed = 0
        var resumedAdds = 0

        var round = 0
        while killedMidWrite + killedAfterWrite < Self.kills && round < Self.maxRounds {
            defer { round += 1 }
            let source = sources[round % sources.count]
            let partial = "\(data)/partial/sha256-\(source.digest)"
            // Kill once the partial holds a random number of bytes (most rounds), the moment it
            // is complete (fsync/verify window), or once it was renamed (rename→commit window).
            let phase = rng.next() % 10
            let threshold = phase < 2 ? Int64(source.size) : Int64(rng.next() % UInt64(source.size))
            let child = try Child(
                Binaries.otamesh,
                [
                    "cache", "add", "--json", "--data-dir", data, "--sha256", source.digest, "--size", String(source.size), source.path,
                ])
            let reached = waitUntil(timeout: 30) {
                !child.process.isRunning || (fileSize(partial) ?? -1) >= min(threshold, Int64(source.size))
            }
            #expect(reached, "round \(round): add neither progressed nor exited")
            if phase == 1 {
                // Into the commit steps: wait until the partial was renamed or the process ended.
                waitUntil(timeout: 30) { !child.process.isRunning || fileSize(partial) == nil }
            }
            let wasRunning = child.process.isRunning
            child.signal(SIGKILL)
            let status = child.wait()
            if wasRunning && status != 0 {
                if threshold < Int64(source.size) { killedMidWrite += 1 } else { killedAfterWrite += 1 }
            } else {
                completed += 1
                if let line = child.stdout.lines.last, line.contains("\"resumedFrom\":"), !line.contains("\"resumedFrom\":0") {
                    resumedAdds += 1
                }
            }
            try checkInvariants(data: data, sources: sources, round: round)
            // Keep exercising adds: once every source is in, remove them all.
            let store = try BlobStore(configuration: StoreConfiguration(directory: data))
            if try store.list().count == sources.count {
                for blob in try store.list() { try store.remove(blob.digest) }
            }
        }
        #expect(killedMidWrite + killedAfterWrite >= 50, "only \(killedMidWrite + killedAfterWrite) kills landed while the add ran")
        #expect(killedMidWrite >= 25)

        // Finally, every add completes, resuming whatever partial survived the last kills.
        for source in sources {
            let (status, out, err) = try run(["cache", "add", "--json", "--data-dir", data, "--sha256", source.digest, source.path])
            #expect(status == 0, "\(err)")
            if out.contains("\"resumedFrom\":"), !out.contains("\"resumedFrom\":0") { resumedAdds += 1 }
        }
        #expect(resumedAdds > 0, "no add ever resumed from a partial")
        let store = try BlobStore(configuration: StoreConfiguration(directory: data))
        #expect(Set(try store.list().map(\.sha256)) == Set(sources.map(\.digest)))
        #expect(try store.verify().corrupt.isEmpty)
        print("crash safety: \(killedMidWrite) kills mid-write, \(killedAfterWrite) during commit, \(completed) completed, \(resumedAdds) resumed adds")
    }

    /// Reopens the store (reconciling) and checks it against the sources.
    func checkInvariants(data: String, sources: [(path: String, digest: String, size: Int)], round: Int) throws {
        let store = try BlobStore(configuration: StoreConfiguration(directory: data))
        let known = Dictionary(uniqueKeysWithValues: sources.map { ($0.digest, $0.size) })
        for blob in try store.list() {
            #expect(known[blob.sha256] == Int(blob.size), "round \(round): listed blob \(blob.sha256) is not a complete source")
            let bytes = try store.read(blob.digest)
            #expect(sha256Hex(Data(bytes)) == blob.sha256, "round \(round): served bytes do not hash to the blob's name")
        }
        for partial in try store.partials() {
            #expect(partial.expectedSHA256.map { known[$0] != nil } == true, "round \(round): unexpected partial \(partial.id)")
            let size = fileSize("\(data)/partial/\(partial.id)") ?? 0
            #expect(size <= Int64(known[partial.expectedSHA256 ?? ""] ?? 0))
        }
        // Nothing in blobs/ that is not listed: every file there is a committed blob.
        var files = 0
        for fanout in (try? FileManager.default.contentsOfDirectory(atPath: "\(data)/blobs/sha256")) ?? [] {
            files += ((try? FileManager.default.contentsOfDirectory(atPath: "\(data)/blobs/sha256/\(fanout)")) ?? []).count
        }
        #expect(files == (try store.list().count), "round \(round): blobs/ holds files the catalog does not list")
    }
}
