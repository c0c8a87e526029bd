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
        for (target, cached) in wanted where !cached && (patterns.isEmpty || patterns.contains { Glob.matches(pattern: $0, path: target.path) }) {
            guard let hex = target.hashes["sha256"]?.lowercased(), let digest = try? BlobDigest(hex: hex) else { continue }
            let holders = peers.filter { $0.images.contains(hex) }.shuffled()
            guard !holders.isEmpty, claims?.claim(hex) ?? true else { continue }
            defer { claims?.release(hex) }
            for holder in holders {
                do {
                    let outcome = try await fetch.fetch(
                        "\(holder.http)/v1/blobs/sha256/\(hex)", expected: ExpectedContent(digest: digest, size: target.length), into: store)
                    fetched.increment()
                    traffic?.addFromPeers(outcome.bytesReceived)
                    report.fetched.append(target.path)
                    logger.info(
                        "image fetched from a peer",
                        metadata: [
                            "target.path": "\(target.path)", "peer.name": "\(holder.name)", "transfer.resumedFrom": "\(outcome.resumedFrom)",
                            "transfer.requests": "\(outcome.requests)",
                        ])
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

    /// The version of the trusted timestamp.json (0 when there is none).
    static func metadataVersion(tufDirectory: String) -> Int {
        guard let bytes = DirectoryPersistence(directory: tufDirectory).load("timestamp.json"),
            let version = (try? JSONValue.parse(bytes))?["signed"]?["version"]?.integerValue
        else { return 0 }
        return Int(version)
    }
}
