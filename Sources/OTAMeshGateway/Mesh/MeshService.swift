import Logging
import OTAMeshCommon
import OTAMeshStore
import OTAMeshTrust
import ServiceLifecycle

/// The gateway's part in the mesh: runs the gossip shell, and every two seconds announces the
/// images this gateway holds and the metadata version it trusts, and — on a gateway without an
/// upstream — takes signed metadata and images from peers (``PeerSync``).
struct MeshService: Service {
    let mesh: Mesh
    let store: BlobStore
    let tufDirectory: String
    let peerSync: PeerSync?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await mesh.run() }
                group.addTask { await upkeep() }
            }
        }
    }

    /// What a peer-sync round depends on: with none of it changed and the last round clean,
    /// another round would only re-read the same metadata and find nothing to do.
    struct SyncInputs: Equatable {
        var generation: Int
        var metadataVersion: Int
        var peers: [String]
    }

    func upkeep() async {
        var generation = -1
        var lastSync: SyncInputs?
        var hintedNoRoot = false
        while !Task.isCancelled {
            if store.generation != generation {
                generation = store.generation
                do { mesh.announceHoldings(Set(try store.list().map(\.sha256))) } catch {
                    logger.error("cannot list the store for the mesh", metadata: ["error": "\(error)"])
                }
            }
            let version = PeerSync.metadataVersion(tufDirectory: tufDirectory)
            mesh.updateInfo { $0.metadataVersion = version }
            if let peerSync {
                let peers = mesh.view().members.filter { $0.status == "alive" }.compactMap { member in
                    member.http.map { PeerSync.Peer(name: member.name, http: $0, metadataVersion: member.metadataVersion ?? 0, images: Set(member.images)) }
                }
                let inputs = SyncInputs(
                    generation: store.generation, metadataVersion: version,
                    peers: peers.map { "\($0.name) \($0.http) \($0.metadataVersion) \($0.images.sorted())" }.sorted())
                if inputs != lastSync {
                    let report = await peerSync.round(peers: peers, now: mesh.wallClock.now().wholeSeconds)
                    if report.noTrustRoot, !hintedNoRoot {
                        hintedNoRoot = true
                        logger.warning("\(PeerSync.noTrustRootHint)")
                    }
                    if !report.fetched.isEmpty { logger.info("peer sync", metadata: ["peerSync.fetched": "\(report.fetched.joined(separator: ","))"]) }
                    // A failed round is retried on the next tick even if nothing changed.
                    lastSync = report.failures.isEmpty ? inputs : nil
                }
            }
            do { try await Task.sleep(for: .seconds(2)) } catch { return }
        }
    }
}
