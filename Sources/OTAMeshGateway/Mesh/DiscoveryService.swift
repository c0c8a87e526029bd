import Logging
import NIOCore
import OTAMeshDiscovery
import ServiceLifecycle

/// Advertises this gateway on the LAN and hands every same-site gateway mDNS finds to the mesh
/// as a join candidate. Without avahi-daemon it logs once and keeps retrying (the discovery
/// module's job); static joins work regardless.
struct DiscoveryService: Service {
    let discovery: MDNSDiscovery
    let mesh: Mesh
    let logger: Logger

    func run() async throws {
        let (found, continuation) = AsyncStream.makeStream(of: DiscoveredPeer.self, bufferingPolicy: .bufferingNewest(256))
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    // The callback runs on discovery's own thread: only hand the peer over.
                    await discovery.run { continuation.yield($0) }
                    continuation.finish()
                }
                group.addTask {
                    for await peer in found {
                        logger.debug("mDNS found a gateway", metadata: ["peer.name": "\(peer.nodeName)", "peer.addresses": "\(peer.addresses)"])
                        for address in peer.addresses {
                            guard let socket = try? SocketAddress(ipAddress: address, port: Int(peer.gossipPort)) else { continue }
                            await mesh.candidate(name: peer.nodeName, address: socket)
                            break
                        }
                    }
                }
            }
        }
    }
}
