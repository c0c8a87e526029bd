import OTAMeshTrust

/// Where pieces come from: a byte range of the blob, read from one peer (the shell: a `Range`
/// request on the peer's blob route; tests: memory).
public protocol PieceSource: Sendable {
    func read(peer: String, offset: Int64, length: Int64) async throws -> [UInt8]
}

/// What a swarm fetch did.
public struct SwarmReport: Sendable, Equatable {
    /// Pieces already verified on disk when it started (a resumed fetch).
    public var resumed = 0
    /// Pieces fetched and verified, by peer.
    public var fromPeer: [String: Int] = [:]
    /// Bytes received in all (duplicates and rejected pieces included).
    public var bytesReceived: Int64 = 0
    /// Peers that sent a piece failing verification: asked for nothing more.
    public var avoided: Set<String> = []
    /// Peers dropped after repeated request failures.
    public var unreachable: Set<String> = []
}

/// Why a swarm fetch did not complete.
public struct SwarmError: Error, Sendable, CustomStringConvertible {
    public let missing: Int
    public let report: SwarmReport
    public let reason: String
    public var description: String { "\(missing) pieces missing: \(reason)" }
}

/// Fetches a blob as verified pieces from several peers at once (``PiecePicker``: rarest first,
/// one request per piece, endgame at the end), into a ``PieceFile``: every piece is checked
/// against the signed piece list before it is written, so a lying peer costs one piece and is
/// avoided; a failing peer is dropped after ``maxFailuresPerPeer`` failed requests in a row.
public struct SwarmFetch: Sendable {
    /// Requests in flight at once, in all and per peer.
    public var parallel: Int
    public var perPeer: Int
    public var maxFailuresPerPeer: Int

    public init(parallel: Int = 8, perPeer: Int = 4, maxFailuresPerPeer: Int = 3) {
        self.parallel = parallel
        self.perPeer = perPeer
        self.maxFailuresPerPeer = maxFailuresPerPeer
    }

    /// Fills `file` from `peers` (each holds the whole blob). Throws ``SwarmError`` when no peer
    /// left can supply the missing pieces; a write error as it is.
    public func run(file: PieceFile, peers: [String], source: some PieceSource, seed: UInt64) async throws -> SwarmReport {
        let layout = file.manifest.layout
        var picker = PiecePicker(count: layout.count, have: file.have, seed: seed)
        var report = SwarmReport(resumed: layout.count - picker.missing)
        var usable = peers
        for peer in peers { picker.announce(peer, pieces: Array(repeating: true, count: layout.count)) }
        var inFlight: [String: Int] = [:]
        var failures: [String: Int] = [:]
        var total = 0
        try await withThrowingTaskGroup(of: (Int, String, Result<[UInt8], any Error>).self) { group in
            func launch() {
                var progress = true
                while progress, total < parallel {
                    progress = false
                    for peer in usable where total < parallel && inFlight[peer, default: 0] < perPeer {
                        guard let piece = picker.next(for: peer) else { continue }
                        let (offset, length) = layout.span(piece)
                        group.addTask {
                            do { return (piece, peer, .success(try await source.read(peer: peer, offset: offset, length: length))) } catch {
                                return (piece, peer, .failure(error))
                            }
                        }
                        inFlight[peer, default: 0] += 1
                        total += 1
                        progress = true
                    }
                }
            }
            launch()
            while !picker.isComplete, let (piece, peer, result) = try await group.next() {
                inFlight[peer, default: 1] -= 1
                total -= 1
                switch result {
                case .success(let bytes):
                    report.bytesReceived += Int64(bytes.count)
                    failures[peer] = 0
                    if picker.have[piece] { break }  // an endgame copy that lost the race
                    if file.manifest.verify(piece, bytes) {
                        try file.write(piece, bytes)
                        picker.received(piece, from: peer, valid: true)
                        report.fromPeer[peer, default: 0] += 1
                    } else {
                        picker.received(piece, from: peer, valid: false)
                        report.avoided.insert(peer)
                        usable.removeAll { $0 == peer }
                    }
                case .failure:
                    picker.abandoned(piece, peer: peer)
                    failures[peer, default: 0] += 1
                    if failures[peer, default: 0] >= maxFailuresPerPeer {
                        picker.forget(peer)
                        report.unreachable.insert(peer)
                        usable.removeAll { $0 == peer }
                    }
                }
                launch()
            }
            group.cancelAll()
        }
        guard picker.isComplete else {
            let why =
                usable.isEmpty
                ? "no peer left (\(report.avoided.isEmpty ? "" : "sent bad pieces: \(report.avoided.sorted().joined(separator: ", ")); ")\(report.unreachable.isEmpty ? "" : "unreachable: \(report.unreachable.sorted().joined(separator: ", "))"))"
                : "the peers left offer nothing more"
            throw SwarmError(missing: picker.missing, report: report, reason: why)
        }
        return report
    }
}
