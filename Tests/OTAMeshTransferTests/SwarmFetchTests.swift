import Foundation
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshTestSupport
import OTAMeshTransfer
import OTAMeshTrust
import Testing

/// The swarm fetch (issue 22) against peers in memory: verified pieces from several peers, a
/// lying peer, a failing one, and a resume from the pieces on disk.
@Suite("swarm fetch")
struct SwarmFetchTests {
    static let blob: [UInt8] = {
        var random = SplitMix64(seed: 11)
        return (0..<(5 * 262_144 + 1000)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }()
    static let layout = try! PieceLayout(length: Int64(blob.count), pieceSize: 262_144)
    static let manifest = try! PieceManifest(bytes: blob, layout: layout)

    /// Peers serving `blob`; a liar flips a byte in everything it sends; a broken peer fails.
    final class Peers: PieceSource, @unchecked Sendable {
        let liars: Set<String>
        let broken: Set<String>
        let served = NIOLockedValueBox<[String: Int]>([:])
        init(liars: Set<String> = [], broken: Set<String> = []) { (self.liars, self.broken) = (liars, broken) }

        func read(peer: String, offset: Int64, length: Int64) async throws -> [UInt8] {
            served.withLockedValue { $0[peer, default: 0] += 1 }
            if broken.contains(peer) { throw Refused() }
            var bytes = Array(SwarmFetchTests.blob[Int(offset)..<Int(offset + length)])
            if liars.contains(peer) { bytes[bytes.count / 2] ^= 0x40 }
            return bytes
        }
    }

    struct Refused: Error {}

    static func assembled(_ file: PieceFile) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: file.dataPath))) }

    @Test("pieces come from every peer in parallel, each verified; the file is the blob")
    func severalPeers() async throws {
        let dir = try TemporaryDirectory()
        let file = try PieceFile(path: dir.file("blob"), manifest: Self.manifest)
        let report = try await SwarmFetch(parallel: 4, perPeer: 2).run(file: file, peers: ["a", "b", "c"], source: Peers(), seed: 1)
        #expect(try Self.assembled(file) == Self.blob)
        #expect(report.fromPeer.values.reduce(0, +) == Self.layout.count)
        #expect(report.fromPeer.count >= 2, "more than one peer served: \(report.fromPeer)")
        #expect(report.avoided.isEmpty && report.resumed == 0)
    }

    @Test("a lying peer costs one piece: it is avoided, the piece comes from another, nothing corrupt is written")
    func lyingPeer() async throws {
        let dir = try TemporaryDirectory()
        let file = try PieceFile(path: dir.file("blob"), manifest: Self.manifest)
        let peers = Peers(liars: ["liar"])
        let report = try await SwarmFetch(parallel: 2, perPeer: 1).run(file: file, peers: ["liar", "honest"], source: peers, seed: 3)
        #expect(report.avoided == ["liar"])
        #expect(report.fromPeer["liar"] == nil && report.fromPeer["honest"] == Self.layout.count)
        #expect(peers.served.withLockedValue { $0["liar"] } == 1, "asked once, never again")
        #expect(try Self.assembled(file) == Self.blob)
    }

    @Test("only liars and unreachable peers: it stops, saying how many pieces are missing and why; what verified stays")
    func noHonestPeer() async throws {
        let dir = try TemporaryDirectory()
        let file = try PieceFile(path: dir.file("blob"), manifest: Self.manifest)
        do {
            _ = try await SwarmFetch().run(file: file, peers: ["liar", "down"], source: Peers(liars: ["liar"], broken: ["down"]), seed: 5)
            Issue.record("completed without an honest peer")
        } catch let error as SwarmError {
            #expect(error.missing == Self.layout.count)
            #expect(error.description.contains("sent bad pieces: liar") && error.description.contains("unreachable: down"), "\(error)")
        }
        #expect(!file.have.contains(true))
    }

    @Test("resumed after a restart from the pieces on disk; a piece marked had whose bytes are wrong is fetched again")
    func resume() async throws {
        let dir = try TemporaryDirectory()
        do {
            let first = try PieceFile(path: dir.file("blob"), manifest: Self.manifest)
            for index in [0, 2, 4] {
                let (offset, length) = Self.layout.span(index)
                try first.write(index, Array(Self.blob[Int(offset)..<Int(offset + length)]))
            }
        }
        // Piece 2's bytes were lost (a crash before they reached the disk): marked, but wrong.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("blob.part")))
        try handle.seek(toOffset: 2 * 262_144 + 10)
        handle.write(Data([0, 0, 0]))
        try handle.close()
        let reopened = try PieceFile(path: dir.file("blob"), manifest: Self.manifest)
        #expect(reopened.have == [true, false, false, false, true, false])
        let peers = Peers()
        let report = try await SwarmFetch().run(file: reopened, peers: ["a"], source: peers, seed: 7)
        #expect(report.resumed == 2 && report.fromPeer["a"] == 4)
        #expect(try Self.assembled(reopened) == Self.blob && reopened.isComplete)
    }
}
