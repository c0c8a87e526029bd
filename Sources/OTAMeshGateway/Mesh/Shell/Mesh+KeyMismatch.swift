import Metrics
import NIOCore
import OTAMeshGossip

/// A gateway with another site key is a misconfiguration an operator must hear about once per
/// peer, on both sides, not as a join that gets "no answer yet" for ever:
///
/// - the receiving side cannot open the packets (UDP) or push-pull frames (TCP) of a gateway
///   with another key; it reports the source address once (``Mesh/noteForeignKey(_:)``);
/// - the responder of a push-pull whose first frame no site key opens answers with one
///   unauthenticated marker frame (length `0xFFFFFFFF`, no body), which the initiator reports as
///   "the gateway there uses another site key". The marker carries no data and changes nothing
///   but that warning, so a forged one costs nothing; gateways from before it see a frame too
///   large and drop the exchange, as before.
extension Mesh {
    static let keyRefusedMarker: UInt32 = 0xFFFF_FFFF

    /// Reports `address` (once) as a gateway with another site key, and counts it.
    func noteForeignKey(_ address: String) {
        guard keyMismatches.withLockedValue({ $0.note(address) }) else { return }
        Counter(label: "otamesh_gossip_key_mismatch_peers_total").increment()
        logger.warning("\(KeyMismatchReports.warning(address: address))")
    }

    /// Whether `address` was found to use another site key.
    func usesForeignKey(_ address: String) -> Bool {
        keyMismatches.withLockedValue { $0.contains(address) }
    }

    /// `IP:PORT` of a socket address, for messages (`[IPv6]:PORT`).
    static func shown(_ address: SocketAddress?, port: Bool = true) -> String {
        guard let address, let ip = address.ipAddress else { return address.map { "\($0)" } ?? "?" }
        let host = ip.contains(":") ? "[\(ip)]" : ip
        guard port, let number = address.port else { return ip }
        return "\(host):\(number)"
    }

    /// Tells the initiator of a push-pull that its frame was not opened here.
    static func refuseKey(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async {
        var buffer = ByteBuffer()
        buffer.writeInteger(keyRefusedMarker)
        try? await outbound.write(buffer)
    }
}
