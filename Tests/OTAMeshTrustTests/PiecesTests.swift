import Crypto
import OTAMeshCommon
import OTAMeshTrust
import Testing

/// Piece layouts, manifests and the signed `pieces` field (issue 22: swarm transfer).
@Suite("pieces")
struct PiecesTests {
    static func bytes(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    @Test("the layout keeps pieces a power of two from 256 KiB to 16 MiB, at most 1,024 of them where that allows")
    func layout() throws {
        #expect(try PieceLayout.choose(length: 1).pieceSize == 256 << 10)
        #expect(try PieceLayout.choose(length: 256 << 20).pieceSize == 256 << 10)
        #expect(try PieceLayout.choose(length: (256 << 20) + 1).pieceSize == 512 << 10)
        #expect(try PieceLayout.choose(length: 64 << 30).pieceSize == 16 << 20)
        let odd = try PieceLayout(length: 1_000_000, pieceSize: 256 << 10)
        #expect(odd.count == 4)
        #expect(odd.span(3) == (786_432, 213_568))
        #expect(throws: PieceError.self) { try PieceLayout(length: 10, pieceSize: 300_000) }
        #expect(throws: PieceError.self) { try PieceLayout(length: 0, pieceSize: 256 << 10) }
        #expect(throws: PieceError.self) { try PieceLayout(length: 10, pieceSize: 32 << 20) }
    }

    @Test("a manifest hashes each piece; streamed in any chunks it is the same; each piece verifies, a changed byte or length does not")
    func manifest() throws {
        let data = Self.bytes(700_000)
        let layout = try PieceLayout(length: 700_000, pieceSize: 256 << 10)
        let whole = try PieceManifest(bytes: data, layout: layout)
        #expect(whole.list.count == 3 * 32)
        #expect(Array(whole.digest(0)) == Array(SHA256.hash(data: data[0..<262_144])))
        var hasher = PieceManifest.Hasher(layout: layout)
        var offset = 0
        for size in [1, 99_999, 262_144, 5, 337_851] {
            hasher.update(data[offset..<(offset + size)])
            offset += size
        }
        #expect(try hasher.finish() == whole)
        #expect(whole.verify(2, data[524_288...]))
        var bad = Array(data[262_144..<524_288])
        bad[1000] ^= 1
        #expect(!whole.verify(1, bad))
        #expect(!whole.verify(1, data[262_144..<524_287]), "a short piece")
        #expect(!whole.verify(3, []) && !whole.verify(-1, []))
    }

    @Test("a piece list from a peer is accepted only if it hashes to the signed root and has one digest per piece")
    func listFromPeer() throws {
        let data = Self.bytes(600_000)
        let layout = try PieceLayout.choose(length: 600_000)
        let signed = try PieceManifest(bytes: data, layout: layout)
        let received = try PieceManifest(list: signed.list, layout: layout, root: signed.root.uppercased())
        #expect(received == signed)
        var lying = signed.list
        lying[5] ^= 0x80
        #expect(throws: PieceError.rootMismatch(expected: signed.root, found: hexString(SHA256.hash(data: lying)))) {
            try PieceManifest(list: lying, layout: layout, root: signed.root)
        }
        #expect(throws: PieceError.self) { try PieceManifest(list: Array(signed.list.dropLast(32)), layout: layout, root: signed.root) }
    }

    @Test("the custom field round-trips; a malformed one is an error, an absent one nil")
    func customField() throws {
        let layout = try PieceLayout.choose(length: 5_000_000)
        let pieces = TargetPieces(layout: layout, root: String(repeating: "AB", count: 32))
        var custom = JSONObject()
        custom["version"] = .string("2.0")
        custom["pieces"] = pieces.json
        #expect(try TargetPieces.from(custom: .object(custom), length: 5_000_000) == pieces)
        #expect(try TargetPieces.from(custom: .object(JSONObject()), length: 5) == nil)
        #expect(try TargetPieces.from(custom: nil, length: 5) == nil)
        custom["pieces"] = .object(["size": .integer(262_144), "root": .string("xyz")])
        #expect(throws: PieceError.self) { try TargetPieces.from(custom: .object(custom), length: 5_000_000) }
        custom["pieces"] = .object(["size": .integer(1000), "root": .string(String(repeating: "0", count: 64))])
        #expect(throws: PieceError.self) { try TargetPieces.from(custom: .object(custom), length: 5_000_000) }
    }
}
