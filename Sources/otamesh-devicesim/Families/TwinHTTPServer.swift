import NIOCore
import NIOHTTP1
import NIOPosix

/// The server state a rebooting twin carries from life to life: the bound port, the listening
/// channel, the connections it serves, and the wait for the next restart.
struct TwinLives {
    var port: Int
    var server: (any Channel)?
    var connections: [ObjectIdentifier: any Channel] = [:]
    var rebootRequested: CheckedContinuation<Void, Never>?
    var stopped = false

    init(port: Int) { self.port = port }
}

/// A push-family twin that serves HTTP on one port and "reboots" by closing it for a while:
/// the NIO server, the connection tracking and the restart loop are shared here; each family
/// keeps its own protocol handling (its `ChannelHandler`) and what a reboot changes.
protocol RebootingHTTPTwin: Actor {
    var id: String { get }
    var host: String { get }
    var sink: EventSink { get }
    var lives: TwinLives { get set }
    /// How long the port stays closed while the device restarts (milliseconds).
    var rebootMS: Int { get }
    /// The family's handler for one accepted connection.
    nonisolated func makeHandler() -> any ChannelHandler & Sendable
    /// The port is (again) bound; `life` 0 is the first boot.
    func lifeBegan(_ life: Int)
    /// The restart is over, the port about to be bound again: take what was installed.
    func lifeRebooted()
}

extension RebootingHTTPTwin {
    var port: Int { lives.port }

    func event(_ name: String, _ fields: [(String, String)] = []) {
        var line = JSONLine()
        line.add("event", name)
        line.add("device", id)
        for (key, value) in fields { line.add(key, value) }
        sink.emit(line)
    }

    /// Serves until `stop()`; every `wakeForReboot()` closes the port for ``rebootMS``.
    func serveLives() async throws {
        for life in 0..<10_000 {
            let channel = try await life == 0 ? bind() : rebind()
            lifeBegan(life)
            if lives.stopped { try? await channel.close(); return }
            await withCheckedContinuation { continuation in lives.rebootRequested = continuation }
            try? await channel.close()
            for connection in lives.connections.values { connection.close(promise: nil) }
            lives.connections = [:]
            if lives.stopped { return }
            try? await Task.sleep(for: .milliseconds(rebootMS))
            lifeRebooted()
        }
    }

    func stop() {
        lives.stopped = true
        wakeForReboot()
    }

    /// Ends the current life: `serveLives` closes the port and restarts.
    func wakeForReboot() {
        lives.rebootRequested?.resume()
        lives.rebootRequested = nil
    }

    /// Binds the port of the last life again. While the twin "rebooted", another socket of this
    /// machine may have taken the number (an outgoing connection's ephemeral port, on a busy
    /// machine): a device comes back on its own port, so it keeps trying for up to 30 s.
    private func rebind() async throws -> any Channel {
        var attempt = 0
        while true {
            do { return try await bind() } catch {
                attempt += 1
                guard attempt < 300, !lives.stopped else { throw error }
                if attempt == 1 { event("rebind-retry", [("port", String(lives.port)), ("error", "\(error)")]) }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private func bind() async throws -> any Channel {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(self.makeHandler())
                }
            }
            .bind(host: host, port: lives.port)
            .get()
        lives.port = server.localAddress?.port ?? lives.port
        lives.server = server
        return server
    }

    /// Tracks `channel` while the port is open; false: the caller closes it.
    func track(_ channel: any Channel) -> Bool {
        guard lives.server?.isActive == true else { return false }
        lives.connections[ObjectIdentifier(channel)] = channel
        return true
    }

    func closed(_ channel: any Channel) { lives.connections[ObjectIdentifier(channel)] = nil }
}

/// The connection side both twins' handlers share: one request per connection
/// (`Connection: close`), tracked by the twin while it is open.
enum TwinConnection {
    /// `accept`: the twin's `opened(_:)`; a refused connection is closed.
    static func active(_ context: ChannelHandlerContext, accept: @escaping @Sendable (any Channel) async -> Bool) {
        let channel = context.channel
        Task {
            if await !accept(channel) { channel.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    static func inactive(_ context: ChannelHandlerContext, twin: some RebootingHTTPTwin) {
        let channel = context.channel
        Task { await twin.closed(channel) }
        context.fireChannelInactive()
    }

    /// Writes the whole answer and closes the connection; `extra` headers follow Content-Type,
    /// Content-Length and Connection.
    static func respond(_ context: ChannelHandlerContext, status: Int, contentType: String, text: String, extra: [(String, String)] = []) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(text.utf8.count))
        headers.add(name: "Connection", value: "close")
        for (name, value) in extra { headers.add(name: name, value: value) }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// What a twin answers one request: written whole, then the connection closes.
struct TwinAnswer: Sendable {
    var status: Int
    var text: String
    var contentType = "application/json"
    var extra: [(String, String)] = []
}

/// One small HTTP/1.1 request per connection (`Connection: close`), its body kept up to 64 KiB,
/// answered by the family's `route`: the handler the projectMM and fetch-URL twins share.
final class TwinRequestHandler<Twin: RebootingHTTPTwin>: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Route = @Sendable (Twin, HTTPRequestHead, [UInt8]) async -> TwinAnswer

    let twin: Twin
    let route: Route
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(twin: Twin, route: @escaping Route) {
        self.twin = twin
        self.route = route
    }

    func channelActive(context: ChannelHandlerContext) {
        let twin = twin
        TwinConnection.active(context) { await twin.track($0) }
    }

    func channelInactive(context: ChannelHandlerContext) { TwinConnection.inactive(context, twin: twin) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            if body.count < 64 << 10 { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        case .end:
            guard let head else { return }
            let (body, twin, route) = (body, twin, route)
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            Task {
                let answer = await route(twin, head, body)
                loop.execute {
                    TwinConnection.respond(bound.value, status: answer.status, contentType: answer.contentType, text: answer.text, extra: answer.extra)
                }
            }
        }
    }
}
