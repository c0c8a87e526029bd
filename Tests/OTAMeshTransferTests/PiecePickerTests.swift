import OTAMeshTransfer
import Testing

/// The swarm fetch's piece choice (issue 22), without sockets.
@Suite("piece picker")
struct PiecePickerTests {
    static let all = Array(repeating: true, count: 8)

    static func bitmap(_ pieces: Set<Int>, count: Int = 8) -> [Bool] { (0..<count).map { pieces.contains($0) } }

    @Test("rarest first: the piece the fewest peers announce goes first")
    func rarestFirst() {
        var picker = PiecePicker(count: 8, seed: 1)
        picker.announce("seed", pieces: Self.all)
        picker.announce("a", pieces: Self.bitmap([0, 1, 2, 3, 4, 5, 7]))
        picker.announce("b", pieces: Self.bitmap([0, 1, 2, 3, 4, 5, 7]))
        // Piece 6 is held by the seed alone.
        #expect(picker.next(for: "seed") == 6)
        #expect(picker.requested[6] == ["seed"])
        // b does not have 6; it is asked for something else, never a piece already requested.
        let fromB = picker.next(for: "b")
        #expect(fromB != nil && fromB != 6)
    }

    @Test("gateways starting from one seeder start at different pieces (random start from the seed)")
    func randomStart() {
        let firsts = Set(
            (0..<16).map { seed -> Int? in
                var picker = PiecePicker(count: 64, seed: UInt64(seed))
                picker.announce("seed", pieces: Array(repeating: true, count: 64))
                return picker.next(for: "seed")
            })
        #expect(firsts.count >= 8, "\(firsts)")
        var again = PiecePicker(count: 64, seed: 3)
        again.announce("seed", pieces: Array(repeating: true, count: 64))
        var same = PiecePicker(count: 64, seed: 3)
        same.announce("seed", pieces: Array(repeating: true, count: 64))
        #expect(again.next(for: "seed") == same.next(for: "seed"), "deterministic for a seed")
    }

    @Test("one request per piece until all are asked for; then endgame asks other peers again, and the first valid copy wins")
    func endgame() {
        var picker = PiecePicker(count: 3, seed: 9)
        for peer in ["a", "b", "c", "d"] { picker.announce(peer, pieces: [true, true, true]) }
        let asked = ["a", "b", "c"].compactMap { picker.next(for: $0) }
        #expect(Set(asked) == [0, 1, 2])
        // Every missing piece is in flight: d duplicates one.
        let duplicate = picker.next(for: "d")
        #expect(duplicate != nil)
        #expect(picker.requested[duplicate!]?.count == 2)
        let moot = picker.received(duplicate!, from: "d", valid: true)
        #expect(moot.count == 1, "the slower copy's request can be dropped")
        #expect(picker.requested[duplicate!] == nil && picker.have[duplicate!])
        #expect(picker.missing == 2)
    }

    @Test("no endgame while some missing piece is unrequested but held by another peer")
    func noEarlyEndgame() {
        var picker = PiecePicker(count: 2, seed: 4)
        picker.announce("a", pieces: [true, false])
        picker.announce("b", pieces: [true, true])
        #expect(picker.next(for: "a") == 0)
        #expect(picker.next(for: "a") == nil, "a has only piece 0, already asked of it")
        #expect(picker.next(for: "b") == 1, "b gets the unrequested piece, not a duplicate of 0")
    }

    @Test("a peer whose piece fails verification is avoided; the piece is asked of another; abandoned requests are wanted again")
    func lyingPeer() {
        var picker = PiecePicker(count: 2, seed: 5)
        picker.announce("liar", pieces: [true, true])
        picker.announce("honest", pieces: [true, true])
        let first = picker.next(for: "liar")!
        #expect(picker.received(first, from: "liar", valid: false).isEmpty)
        #expect(picker.avoided == ["liar"])
        #expect(picker.next(for: "liar") == nil, "asked for nothing more")
        let retried = picker.next(for: "honest")
        #expect(retried != nil)
        picker.abandoned(retried!, peer: "honest")
        #expect(picker.requested[retried!] == nil)
        // A departed peer's requests are released too.
        let again = picker.next(for: "honest")!
        picker.forget("honest")
        #expect(picker.requested[again] == nil)
        #expect(picker.next(for: "honest") == nil)
    }

    @Test("resumed with pieces already verified, only the rest are asked for; done when all are had")
    func resume() {
        var picker = PiecePicker(count: 4, have: [true, false, true, false], seed: 2)
        picker.announce("a", pieces: [true, true, true, true])
        var got: Set<Int> = []
        while let piece = picker.next(for: "a") {
            got.insert(piece)
            picker.received(piece, from: "a", valid: true)
        }
        #expect(got == [1, 3] && picker.isComplete)
    }
}
