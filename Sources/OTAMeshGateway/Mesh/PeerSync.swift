import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import OTAMeshStore
import OTAMeshTransfer
import OTAMeshTrust

/// Feeds a gateway from its peers. Each round it (1) refreshes its TUF metadata from the peer
/// that advertises the newest (running the full client workflow against that peer's
/// `/v1/tuf/` mirror, so nothing is trusted that its own root does not sign), then (2) fetches
/// every signed target it lacks from a peer that holds it, through the resumable transfer
/// client, verified against the signed length and SHA-256 by the store's ingest.
struct PeerSync: Sendable {
    let tufDirectory: String
    let store: BlobStore
    let patterns: [String]
    let fetch: ResumableFetch
    let logger: Logger
    /// Image bytes fetched from peers are added here.
    var traffic: TrafficTotals? = nil
    /// Take signed metadata from peers too (a gateway with an upstream refreshes it there).
    var metadataFromPeers = true
    /// Images being fetched by this gateway's upstream sync or here.
    var claims: FetchClaims? = nil
    /// Where images fetched as pieces are assembled (`DATA/swarm`; nil: whole fetches only).
    var swarmDirectory: String? = nil

    let fetched = Counter(label: "otamesh_peer_fetches_total", dimensions: [("result", "ok")])
    let failed = Counter(label: "otamesh_peer_fetches_total", dimensions: [("result", "failed")])
    let metadataRefreshes = Counter(label: "otamesh_peer_metadata_refreshes_total")

    /// A peer as this round sees it.
    struct Peer: Sendable {
        var name: String
        var http: String
        var metadataVersion: Int
        var images: Set<String>
    }

    /// What one round did.
    struct Report: Sendable, Equatable {
        var metadataFrom: String?
        var fetched: [String] = []
        var failures: [String] = []
        /// This gateway trusts no TUF root, so it can take nothing from peers (nothing was tried).
        var noTrustRoot = false
    }

    /// Logged once by ``MeshService`` while a gateway has no trusted root.
    static let noTrustRootHint =
        "no trusted TUF root: this gateway takes no signed metadata or images from its peers and no part in rollouts; "
        + "give it the site's root.json (otamesh agent --trust-root FILE, or otamesh import --root FILE) and restart"

    func round(peers: [Peer], now: Int64) async -> Report {
        var report = Report()
        guard DirectoryPersistence(directory: tufDirectory).load("root.json") != nil else {
            report.noTrustRoot = true
            return report
        }
        let mine = metadataFromPeers ? Self.metadataVersion(tufDirectory: tufDirectory) : Int.max
        for peer in peers.filter({ $0.metadataVersion > mine }).sorted(by: { $0.metadataVersion > $1.metadataVersion }) {
            let mirror = DirectoryPersistence(directory: tufDirectory)
            var updater = Updater(
                metadata: HTTPFiles(baseURL: "\(peer.http)/v1/tuf"), targets: HTTPFiles(baseURL: "\(peer.http)/v1/targets"),
                persistence: mirror, rootHistory: mirror, now: now)
            do {
                try await updater.refresh()
                metadataRefreshes.increment()
                report.metadataFrom = peer.name
                logger.info(
                    "signed metadata refreshed from a peer", metadata: ["peer.name": "\(peer.name)", "peer.metadataVersion": "\(peer.metadataVersion)"])
                break
            } catch {
                report.failures.append("metadata from \(peer.name): \(error)")
                logger.warning("signed metadata from a peer refused", metadata: ["peer.name": "\(peer.name)", "error": "\(error)"])
            }
        }
        let wanted: [(TargetFile, inCache: Bool)]
        do { wanted = try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store) } catch {
            report.failures.append("targets: \(error)")
            return report
        }
        let missing = wanted.filter { target, cached in !cached && (patterns.isEmpty || patterns.contains { Glob.matches(pattern: $0, path: target.path) }) }
        dropStalePieces(keeping: Set(missing.compactMap { $0.0.hashes["sha256"]?.lowercased() }))
        for (target, _) in missing {
            guard let hex = target.hashes["sha256"]?.lowercased(), let digest = try? BlobDigest(hex: hex) else { continue }
            let holders = peers.filter { $0.images.contains(hex) }.shuffled()
            guard !holders.isEmpty, claims?.claim(hex) ?? true else { continue }
            defer { claims?.release(hex) }
            // Signed pieces and more than one holder (or pieces already here from an earlier
            // run): verified pieces from all of them at once.
            if let swarmDirectory, let pieces = (try? TargetPieces.from(custom: target.custom, length: target.length)) ?? nil,
                holders.count >= 2 || FileManager.default.fileExists(atPath: "\(swarmDirectory)/\(hex).have")
            {
                do {
                    let swarm = try await swarmFetch(target, digest: digest, pieces: pieces, holders: holders, directory: swarmDirectory)
                    succeeded(
                        target, bytes: swarm.bytesReceived, &report, "image fetched from peers as pieces",
                        [
                            "peers": "\(swarm.fromPeer.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))",
                            "pieces.resumed": "\(swarm.resumed)", "peers.avoided": "\(swarm.avoided.sorted().joined(separator: ","))",
                        ])
                    continue
                } catch {
                    logger.warning(
                        "image fetch as pieces failed; fetching it whole", metadata: ["target.path": "\(target.path)", "error": "\(error)"])
                }
            }
            for holder in holders {
                do {
                    let outcome = try await fetch.fetch(
                        "\(holder.http)/v1/blobs/sha256/\(hex)", expected: ExpectedContent(digest: digest, size: target.length), into: store)
                    succeeded(
                        target, bytes: outcome.bytesReceived, &report, "image fetched from a peer",
                        ["peer.name": "\(holder.name)", "transfer.resumedFrom": "\(outcome.resumedFrom)", "transfer.requests": "\(outcome.requests)"])
                    break
                } catch {
                    failed.increment()
                    report.failures.append("\(target.path) from \(holder.name): \(error)")
                    logger.warning(
                        "image fetch from a peer failed", metadata: ["target.path": "\(target.path)", "peer.name": "\(holder.name)", "error": "\(error)"])
                }
            }
        }
        return report
    }

    /// Deletes partly assembled images (`DATA/swarm`) no trusted target wants any more, and none
    /// being fetched now, so they do not pile up across releases.
    func dropStalePieces(keeping wanted: Set<String>) {
        guard let swarmDirectory, let names = try? FileManager.default.contentsOfDirectory(atPath: swarmDirectory) else { return }
        for hex in Set(names.map { String($0.prefix { $0 != "." }) }) where !wanted.contains(hex) {
            guard claims?.claim(hex) ?? true else { continue }
            defer { claims?.release(hex) }
            for name in names where name.hasPrefix(hex + ".") { try? FileManager.default.removeItem(atPath: "\(swarmDirectory)/\(name)") }
            logger.info("partly fetched image dropped: no trusted target wants it", metadata: ["blob.sha256": "\(hex)"])
        }
    }

    /// Counts and logs an image fetched from peers.
    func succeeded(_ target: TargetFile, bytes: Int64, _ report: inout Report, _ message: Logger.Message, _ metadata: Logger.Metadata) {
        fetched.increment()
        traffic?.addFromPeers(bytes)
        report.fetched.append(target.path)
        logger.info(message, metadata: metadata.merging(["target.path": "\(target.path)"]) { a, _ in a })
    }

    /// Fetches `target` as verified pieces from `holders` into `directory`, resumable across
    /// restarts, then hands the assembled file to the store (which checks the signed SHA-256
    /// once more).
    func swarmFetch(_ target: TargetFile, digest: BlobDigest, pieces: TargetPieces, holders: [Peer], directory: String) async throws -> SwarmReport {
        // Nothing is assembled that the store could not take.
        try store.checkFits(size: target.length)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        configuration.decompression = .disabled
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let report = try await swarmFetch(target, digest: digest, pieces: pieces, holders: holders, directory: directory, client: client)
            try? await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    func swarmFetch(
        _ target: TargetFile, digest: BlobDigest, pieces: TargetPieces, holders: [Peer], directory: String, client: HTTPClient
    ) async throws -> SwarmReport {
        let source = HTTPPieceSource(
            client: client, blob: digest.hex, length: target.length, peers: Dictionary(holders.map { ($0.name, $0.http) }, uniquingKeysWith: { a, _ in a }))
        var manifest: PieceManifest?
        var refusals: [String] = []
        for holder in holders {
            do {
                manifest = try await source.pieceList(from: holder.name, pieces: pieces)
                break
            } catch { refusals.append("\(holder.name): \(error)") }
        }
        guard let manifest else { throw HTTPPieceSource.Refused(description: "no piece list: \(refusals.joined(separator: "; "))") }
        let file = try PieceFile(path: "\(directory)/\(digest.hex)", manifest: manifest)
        let report = try await SwarmFetch().run(file: file, peers: holders.map(\.name), source: source, seed: UInt64.random(in: 0...UInt64.max))
        try file.sync()
        defer { file.remove() }
        _ = try store.addFile(file.dataPath, expected: ExpectedContent(digest: digest, size: target.length))
        return report
    }

    /// The version of the trusted timestamp.json (0 when there is none).
    static func metadataVersion(tufDirectory: String) -> Int {
        guard let bytes = DirectoryPersistence(directory: tufDirectory).load("timestamp.json"),
            let version = (try? JSONValue.parse(bytes))?["signed"]?["version"]?.integerValue
        else { return 0 }
        return Int(version)
    }
}
