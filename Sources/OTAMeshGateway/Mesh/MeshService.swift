import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshTrust
import ServiceLifecycle

/// The gateway's part in the mesh: runs the gossip shell, announces the images this gateway
/// holds and the metadata version it trusts whenever the release catalog changes, and takes
/// images from peers (``PeerSync``; signed metadata too on a gateway without an upstream),
/// looking every two seconds whether the peers offer something new.
struct MeshService: Service {
    let mesh: Mesh
    let tufDirectory: String
    let releases: ReleaseCatalog
    let peerSync: PeerSync?
    let logger: Logger
    /// Announced in the member info every 30 s when it changed.
    var traffic: TrafficTotals? = nil
    /// The timestamp version this gateway trusts, as last announced.
    let trusted = NIOLockedValueBox(0)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await mesh.run() }
                group.addTask { await announce() }
                group.addTask { await upkeep() }
                if let traffic {
                    group.addTask {
                        while !Task.isCancelled {
                            mesh.updateInfo { $0.traffic = traffic.current }
                            do { try await Task.sleep(for: .seconds(30)) } catch { return }
                        }
                    }
                }
            }
        }
    }

    /// Tells the mesh what this gateway holds and trusts, now and after every change.
    func announce() async {
        for await catalog in releases.changes() {
            mesh.announceHoldings(Set(catalog.blobs.keys))
            let version = PeerSync.metadataVersion(tufDirectory: tufDirectory)
            trusted.withLockedValue { $0 = version }
            mesh.updateInfo { $0.metadataVersion = version }
        }
    }

    /// What a peer-sync round depends on: with none of it changed and the last round clean,
    /// another round would only re-read the same metadata and find nothing to do.
    struct SyncInputs: Equatable {
        var generation: UInt64
        var metadataVersion: Int
        var peers: [String]
    }

    func upkeep() async {
        guard let peerSync else { return }
        var lastSync: SyncInputs?
        var hintedNoRoot = false
        while !Task.isCancelled {
            let peers = mesh.view().members.filter { $0.status == "alive" }.compactMap { member in
                member.http.map { PeerSync.Peer(name: member.name, http: $0, metadataVersion: member.metadataVersion ?? 0, images: Set(member.images)) }
            }
            let inputs = SyncInputs(
                generation: releases.generation, metadataVersion: trusted.withLockedValue { $0 },
                peers: peers.map { "\($0.name) \($0.http) \($0.metadataVersion) \($0.images.sorted())" }.sorted())
            if inputs != lastSync {
                let report = await peerSync.round(peers: peers, now: mesh.wallClock.now().wholeSeconds)
                if report.noTrustRoot, !hintedNoRoot {
                    hintedNoRoot = true
                    logger.warning("\(PeerSync.noTrustRootHint)")
                }
                if !report.fetched.isEmpty { logger.info("peer sync", metadata: ["peerSync.fetched": "\(report.fetched.joined(separator: ","))"]) }
                if report.metadataFrom != nil || !report.fetched.isEmpty { releases.changed("peer sync") }
                // A failed round is retried on the next tick even if nothing changed.
                lastSync =
                    report.failures.isEmpty ? SyncInputs(generation: releases.generation, metadataVersion: inputs.metadataVersion, peers: inputs.peers) : nil
            }
            do { try await Task.sleep(for: .seconds(2)) } catch { return }
        }
    }
}
