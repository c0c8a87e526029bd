import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// Why the gossip shell could not bind or finish an exchange.
public enum MeshError: Error, Sendable, CustomStringConvertible {
    case bind(String)
    case stream(String)
    case timeout
    /// A frame from this address that no site key opens.
    case foreignKey(String)
    /// The peer answered that no site key of its own opens this gateway's frames.
    case peerRefusedKey

    public var description: String {
        switch self {
        case .bind(let why): "gossip: cannot listen: \(why)"
        case .stream(let why): "gossip stream: \(why)"
        case .foreignKey(let who): "gossip stream: \(who) uses another site key"
        case .peerRefusedKey: "gossip stream: the peer uses another site key"
        case .timeout: "gossip stream: timed out"
        }
    }
}

/// Keeps the UDP socket alive through send errors: a `sendto` refused by a firewall (EPERM) or
/// an unreachable route reaches the pipeline as an error, which would otherwise end the async
/// channel's inbound stream — and with it all gossip. Counted and logged at debug instead.
final class DatagramErrors: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias InboundOut = AddressedEnvelope<ByteBuffer>
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        Counter(label: "otamesh_gossip_send_failures_total").increment()
        logger.debug("gossip UDP error (socket kept)", metadata: ["error": "\(error)"])
    }
}

/// Length-prefixed frames (u32 big-endian) out of a byte stream.
struct FrameReader<Source: AsyncIteratorProtocol> where Source.Element == ByteBuffer {
    var source: Source
    var buffer = ByteBuffer()

    init(_ source: Source) {
        self.source = source
    }

    mutating func next(limit: Int) async throws -> [UInt8] {
        while true {
            if let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) {
                if length == Mesh.keyRefusedMarker { throw MeshError.peerRefusedKey }
                guard Int(length) <= limit else { throw MeshError.stream("frame of \(length) bytes (limit \(limit))") }
                if buffer.readableBytes >= 4 + Int(length) {
                    buffer.moveReaderIndex(forwardBy: 4)
                    return buffer.readBytes(length: Int(length))!
                }
            }
            guard var more = try await source.next() else { throw MeshError.stream("closed mid-frame") }
            buffer.discardReadBytes()
            buffer.writeBuffer(&more)
        }
    }
}

/// Runs `body`, failing with ``MeshError/timeout`` when it takes longer than `limit`.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw MeshError.timeout }
        return value
    }
}

extension Mesh {
    /// One of ``maxUnauthenticatedStreams`` places for an inbound stream not yet authenticated;
    /// released once its first frame opens, or when it ends.
    final class PreAuthSlot: Sendable {
        let mesh: Mesh
        let taken: Bool
        private let held: NIOLockedValueBox<Bool>

        init(mesh: Mesh) {
            self.mesh = mesh
            taken = mesh.unauthenticatedStreams.withLockedValue { count in
                guard count < Mesh.maxUnauthenticatedStreams else { return false }
                count += 1
                return true
            }
            held = NIOLockedValueBox(taken)
        }

        func release() {
            guard
                held.withLockedValue({ held in
                    defer { held = false }; return held
                })
            else { return }
            mesh.unauthenticatedStreams.withLockedValue { $0 -= 1 }
        }
    }
}
