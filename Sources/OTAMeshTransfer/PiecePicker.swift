import OTAMeshCommon

/// Which piece of a blob to ask which peer for next, in a swarm fetch between gateways. Pure
/// and deterministic (the random start comes from the seed).
///
/// - **Rarest first**: among the pieces a peer announces and this gateway lacks, the one the
///   fewest peers announce; ties go in order from a random start, so gateways that all start
///   from one seeder fetch different pieces and can trade them.
/// - **One request per piece** until every missing piece is requested; then **endgame**: an
///   in-flight piece is asked again of another peer (fewest copies in flight first, at most
///   ``endgameCopies``), and the first copy that verifies wins.
/// - **A lying peer** — a piece from it failed verification — is asked for nothing more.
public struct PiecePicker: Sendable {
    public let count: Int
    public private(set) var have: [Bool]
    /// Peers asked for each piece in flight.
    public private(set) var requested: [Int: Set<String>] = [:]
    /// Peers whose pieces failed verification.
    public private(set) var avoided: Set<String> = []
    var announced: [String: [Bool]] = [:]
    /// How many (not avoided) peers announce each piece.
    var availability: [Int]
    let start: Int

    /// Copies of one piece in flight at most, in endgame.
    public static let endgameCopies = 3

    public init(count: Int, have: [Bool] = [], seed: UInt64) {
        self.count = count
        self.have = have.count == count ? have : Array(repeating: false, count: count)
        availability = Array(repeating: 0, count: count)
        var random = SplitMix64(seed: seed)
        start = count > 0 ? Int(random.next() % UInt64(count)) : 0
    }

    public var missing: Int { have.reduce(0) { $0 + ($1 ? 0 : 1) } }
    public var isComplete: Bool { !have.contains(false) }

    /// What `peer` announces now (a bitmap of `count` pieces; a whole holder: all true).
    public mutating func announce(_ peer: String, pieces: [Bool]) {
        guard pieces.count == count else { return }
        forget(peer)
        announced[peer] = pieces
        if !avoided.contains(peer) { for (i, held) in pieces.enumerated() where held { availability[i] += 1 } }
    }

    /// `peer` is gone: its announcement and its requests.
    public mutating func forget(_ peer: String) {
        if let old = announced.removeValue(forKey: peer), !avoided.contains(peer) {
            for (i, held) in old.enumerated() where held { availability[i] -= 1 }
        }
        for (piece, peers) in requested where peers.contains(peer) { clear(piece, peer) }
    }

    /// The piece to ask `peer` for now (recorded as requested of it), or nil: nothing it has is
    /// wanted, or it is avoided.
    public mutating func next(for peer: String) -> Int? {
        guard !avoided.contains(peer), let offers = announced[peer] else { return nil }
        var best: (piece: Int, key: (Int, Int))?
        var endgame: (piece: Int, key: (Int, Int, Int))?
        for step in 0..<count {
            let i = (start + step) % count
            guard !have[i], offers[i] else { continue }
            if let asked = requested[i] {
                guard !asked.contains(peer), asked.count < Self.endgameCopies else { continue }
                let key = (asked.count, availability[i], step)
                if endgame == nil || key < endgame!.key { endgame = (i, key) }
            } else {
                let key = (availability[i], step)
                if best == nil || key < best!.key { best = (i, key) }
            }
        }
        // Endgame only once no peer offers a missing piece nobody was asked for.
        let endgameNow = best == nil && !(0..<count).contains { !have[$0] && requested[$0] == nil && availability[$0] > 0 }
        guard let piece = best?.piece ?? (endgameNow ? endgame?.piece : nil) else { return nil }
        requested[piece, default: []].insert(peer)
        return piece
    }

    /// Piece `index` arrived from `peer`: `valid` if it verified against the signed list. A valid
    /// piece is had, and the other peers still asked for it are returned (their requests can be
    /// dropped); an invalid one makes `peer` avoided and the piece wanted again.
    @discardableResult
    public mutating func received(_ index: Int, from peer: String, valid: Bool) -> Set<String> {
        guard index >= 0, index < count else { return [] }
        guard valid else {
            avoid(peer)
            clear(index, peer)
            return []
        }
        let others = (requested.removeValue(forKey: index) ?? []).subtracting([peer])
        have[index] = true
        return others
    }

    /// A request failed on the way (network, timeout): the piece is wanted again.
    public mutating func abandoned(_ index: Int, peer: String) {
        clear(index, peer)
    }

    /// Stops asking `peer` for anything (a piece from it failed verification).
    public mutating func avoid(_ peer: String) {
        guard avoided.insert(peer).inserted, let offers = announced[peer] else { return }
        for (i, held) in offers.enumerated() where held { availability[i] -= 1 }
    }

    mutating func clear(_ index: Int, _ peer: String) {
        guard var peers = requested[index] else { return }
        peers.remove(peer)
        requested[index] = peers.isEmpty ? nil : peers
    }
}
