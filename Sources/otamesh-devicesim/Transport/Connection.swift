import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Why a request did not complete, in the words a device log would use.
enum TransferError: Error, Sendable, Equatable, CustomStringConvertible {
    case connect(String)
    case tls(String)
    case timeout(phase: String)
    case closedEarly(received: Int, expected: Int?)
    case badResponse(String)
    case headTooLarge
    /// Fault injection: the link was cut after this many image bytes.
    case droppedByFault(at: Int)
    /// Fault injection: the device lost power after this many image bytes.
    case powerLoss(at: Int)
    case io(String)

    var description: String {
        switch self {
        case .connect(let why): "connect failed: \(why)"
        case .tls(let why): "TLS: \(why)"
        case .timeout(let phase): "timeout (\(phase))"
        case .closedEarly(let received, let expected):
            "connection closed after \(received) of \(expected.map(String.init) ?? "?") body bytes"
        case .badResponse(let why): "bad response: \(why)"
        case .headTooLarge: "response head larger than 16 KiB"
        case .droppedByFault(let at): "connection dropped by fault injection at image byte \(at)"
        case .powerLoss(let at): "power lost at image byte \(at)"
        case .io(let why): "I/O: \(why)"
        }
    }
}

/// Opens TCP (or TLS) connections on a shared event loop group. One per process.
final class Transport: Sendable {
    let group: any EventLoopGroup
    let tls: NIOSSLContext?
    let connectTimeout: TimeAmount

    init(group: any EventLoopGroup, tls: NIOSSLContext?, connectTimeout: TimeAmount) {
        self.group = group
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    /// A client TLS context that trusts only the PEM certificates in `caFile` and checks the
    /// server's name or IP address (what `cert_pem` / `setCACert` do on the devices).
    static func tlsContext(caFile: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        configuration.certificateVerification = .fullVerification
        return try NIOSSLContext(configuration: configuration)
    }

    /// Connects to `endpoint`, runs `body` with the connection and closes it, whatever happens.
    /// `idleTimeout` is the device's read timeout: no bytes consumed for that long closes the
    /// connection and the pending read fails with ``TransferError/timeout(phase:)``.
    func withConnection<R: Sendable>(
        to endpoint: Endpoint, idleTimeout: Duration, receiveBuffer: Int? = nil,
        _ body: (inout ConnectionIO) async throws -> R
    ) async throws -> R {
        let tlsContext: NIOSSLContext?
        if endpoint.isTLS {
            guard let tls else { throw TransferError.tls("no CA configured for \(endpoint.url) (use --ca FILE)") }
            tlsContext = tls
        } else {
            tlsContext = nil
        }
        let sni: String? = endpoint.hostIsIPAddress ? nil : endpoint.host
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let receiveBuffer {
            bootstrap =
                bootstrap
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: receiveBuffer))
                .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer * 2))
        }
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sni))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 4)))
                }
            }
        } catch {
            throw TransferError.connect(String(describing: error))
        }
        let watchdog = IdleWatchdog(channel: channel.channel, timeout: idleTimeout)
        defer { watchdog.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var io = ConnectionIO(inbound: inbound.makeAsyncIterator(), outbound: outbound, watchdog: watchdog, isTLS: tlsContext != nil)
            return try await body(&io)
        }
    }
}

/// Closes a connection when the device has consumed no bytes for `timeout` (the devices' read
/// timeouts are inactivity timeouts: esp_http_client `timeout_ms`, Arduino `setTimeout`).
final class IdleWatchdog: Sendable {
    private struct State {
        var last: NIODeadline = .now()
        var timeout: TimeAmount?
        var fired = false
        var cancelled = false
        var scheduled: Scheduled<Void>?
    }

    private let state: Mutex<State>
    private let channel: any Channel

    init(channel: any Channel, timeout: Duration) {
        self.channel = channel
        state = Mutex(State(timeout: TimeAmount(timeout)))
        schedule(after: TimeAmount(timeout))
    }

    var fired: Bool { state.withLock { $0.fired } }

    /// Bytes arrived: the clock starts again.
    func touch() { state.withLock { $0.last = .now() } }

    /// Changes the timeout (nil: never time out) from now on.
    func setTimeout(_ timeout: Duration?) {
        state.withLock {
            $0.timeout = timeout.map(TimeAmount.init)
            $0.last = .now()
        }
    }

    func cancel() {
        let scheduled = state.withLock { state -> Scheduled<Void>? in
            state.cancelled = true
            defer { state.scheduled = nil }
            return state.scheduled
        }
        scheduled?.cancel()
    }

    private func schedule(after delay: TimeAmount) {
        let task = channel.eventLoop.scheduleTask(in: delay) { [self] in check() }
        let keep = state.withLock { state -> Bool in
            guard !state.cancelled else { return false }
            state.scheduled = task
            return true
        }
        if !keep { task.cancel() }
    }

    private func check() {
        enum Next { case stop, fire, again(TimeAmount) }
        let next = state.withLock { state -> Next in
            if state.cancelled || state.fired { return .stop }
            guard let timeout = state.timeout else { return .again(.seconds(1)) }
            let idle = NIODeadline.now() - state.last
            if idle >= timeout {
                state.fired = true
                return .fire
            }
            return .again(timeout - idle)
        }
        switch next {
        case .stop: break
        case .fire: channel.close(promise: nil)
        case .again(let delay): schedule(after: delay)
        }
    }
}

/// One open connection as the device sees it: write the request bytes, then read. Not
/// Sendable; it lives inside one device task.
struct ConnectionIO {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let watchdog: IdleWatchdog
    let isTLS: Bool
    /// Bytes received but not yet consumed.
    private var pending: ArraySlice<UInt8> = []
    private(set) var eof = false

    init(
        inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        watchdog: IdleWatchdog, isTLS: Bool
    ) {
        self.inbound = inbound
        self.outbound = outbound
        self.watchdog = watchdog
        self.isTLS = isTLS
    }

    /// Sends raw request bytes.
    func send(_ bytes: [UInt8]) async throws {
        do {
            try await outbound.write(ByteBuffer(bytes: bytes))
        } catch {
            throw watchdog.fired ? TransferError.timeout(phase: "send") : TransferError.io("write: \(error)")
        }
    }

    /// The next bytes (what is pending first, up to `max`), or nil at end of stream.
    mutating func read(max: Int = .max, phase: String) async throws -> ArraySlice<UInt8>? {
        if pending.isEmpty {
            guard !eof else { return nil }
            let next: ByteBuffer?
            do {
                next = try await inbound.next()
            } catch let error as NIOSSLError where error == .uncleanShutdown {
                next = nil  // the peer closed TCP without close_notify: treat as end of stream
            } catch {
                if watchdog.fired { throw TransferError.timeout(phase: phase) }
                throw isTLS ? TransferError.tls(String(describing: error)) : TransferError.io(String(describing: error))
            }
            if watchdog.fired { throw TransferError.timeout(phase: phase) }
            guard let next else {
                eof = true
                return nil
            }
            pending = ArraySlice(next.readableBytesView)
            watchdog.touch()
        }
        let count = min(max, pending.count)
        let out = pending.prefix(count)
        pending = pending.dropFirst(count)
        return out
    }

    /// Reads through the blank line that ends the response head.
    mutating func readHead(phase: String = "response head") async throws -> ResponseHead {
        var buffer: [UInt8] = []
        while true {
            if let end = ResponseHead.endOfHead(in: buffer) {
                pending = buffer[end...] + pending
                do {
                    return try ResponseHead.parse(Array(buffer[..<end]))
                } catch {
                    throw TransferError.badResponse("\(error)")
                }
            }
            guard buffer.count <= 16 << 10 else { throw TransferError.headTooLarge }
            guard let chunk = try await read(phase: phase) else {
                throw buffer.isEmpty
                    ? TransferError.badResponse("connection closed before any response")
                    : TransferError.badResponse("connection closed inside the response head")
            }
            buffer += chunk
        }
    }

    /// Everything until the peer closes (or `limit` bytes).
    mutating func readToEnd(limit: Int, phase: String) async throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < limit, let chunk = try await read(max: limit - out.count, phase: phase) {
            out += chunk
        }
        return out
    }
}
