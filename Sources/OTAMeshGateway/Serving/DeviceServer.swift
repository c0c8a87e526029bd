import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import OTAMeshDevices
import OTAMeshStore
import OTAMeshTransfer

#if canImport(Glibc)
import Glibc
#endif

/// The device-facing HTTP(S) server: a thin SwiftNIO shell around ``DeviceAPI``. Plain HTTP
/// bodies go out with sendfile (NIO `FileRegion`); over TLS the blob is read in chunks with
/// back-pressure. Keep-alive and pipelining as HTTP/1.1 clients expect.
public final class DeviceServer: Sendable {
    let api: DeviceAPI
    let blobPath: @Sendable (String) -> String
    let logger: Logger
    let fileIO: NonBlockingFileIO
    let threadPool: NIOThreadPool
    let dates = HTTPDateCache()
    /// A connection that completes no request for this long, with no response in flight, is
    /// closed — also one trickling a request head a byte at a time (a slow download in progress
    /// is never cut).
    let idleTimeout: TimeAmount
    /// Caps the connections of both device listeners (plain and TLS); nil: uncapped.
    let gate: ConnectionGate?
    let requests = Counter(label: "otamesh_device_requests_total")
    let bytesSent = Counter(label: "otamesh_device_bytes_sent_total")
    /// The same bytes, readable (the dashboard's "served to devices").
    let traffic: TrafficTotals

    public init(
        api: DeviceAPI, blobPath: @escaping @Sendable (String) -> String, logger: Logger,
        idleTimeout: Double = 120, gate: ConnectionGate? = nil, threadPool: NIOThreadPool = .singleton, traffic: TrafficTotals = TrafficTotals()
    ) {
        self.traffic = traffic
        self.gate = gate
        self.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        self.api = api
        self.blobPath = blobPath
        self.logger = logger
        self.fileIO = NonBlockingFileIO(threadPool: threadPool)
        self.threadPool = threadPool
    }

    /// Binds `host:port` (port 0 = any free port) and returns the listening channel.
    public func bind(
        host: String, port: Int, tls: NIOSSLContext? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> any Channel {
        let server = self
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let gate = server.gate {
                        try channel.pipeline.syncOperations.addHandler(ConnectionGateHandler(gate: gate))
                    }
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        DeviceHTTPHandler(server: server, isTLS: tls != nil))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// Per-connection request handling.
final class DeviceHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: DeviceServer
    let isTLS: Bool
    private var head: HTTPRequestHead?
    /// The body of a PUT or POST (DDI feedback, configData), up to ``DDI/maxBody``; nil for
    /// other methods, whose bodies are dropped.
    private var body: [UInt8]?
    private var bodyTooLarge = false
    /// Responses being written (the idle timeout must not cut a slow download).
    private var inFlight = 0 {
        didSet {
            guard (oldValue == 0) != (inFlight == 0), let context else { return }
            server.gate?.setBusy(context.channel, inFlight > 0)
            if inFlight == 0 { awaitRequest(context) }
        }
    }
    private var context: ChannelHandlerContext?
    /// Closes a connection that completes no request head within the idle timeout while no
    /// response is in flight: a read timeout alone is reset by every byte, so a head trickled a
    /// byte at a time would hold the socket forever.
    private var requestTimer: Scheduled<Void>?
    /// Closes a connection whose request body does not end within ``bodyDeadline``: the idle
    /// timeout alone lets a body trickled one byte every few seconds hold the socket forever.
    private var bodyTimer: Scheduled<Void>?
    static let bodyDeadline = TimeAmount.seconds(10)

    init(server: DeviceServer, isTLS: Bool) {
        self.server = server
        self.isTLS = isTLS
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        awaitRequest(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// (Re)arms the wait for the next request head, unless one is pending or a response is out.
    private func awaitRequest(_ context: ChannelHandlerContext) {
        requestTimer?.cancel()
        requestTimer = nil
        guard inFlight == 0, head == nil else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        requestTimer = context.eventLoop.scheduleTask(in: server.idleTimeout) {
            let handler = handler.value
            if handler.inFlight == 0, handler.head == nil { channel.close(promise: nil) }
        }
    }

    /// A malformed request (the protocol error handler already answered 400 with
    /// `Connection: close`) or a broken connection: close it, as the 400 said.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        bodyTimer = nil
        requestTimer?.cancel()
        requestTimer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = head.method == .POST || head.method == .PUT ? [] : nil
            bodyTooLarge = false
            requestTimer?.cancel()
            requestTimer = nil
            let channel = context.channel
            bodyTimer?.cancel()
            bodyTimer = context.eventLoop.scheduleTask(in: Self.bodyDeadline) { channel.close(promise: nil) }
        case .body(let chunk):
            // Only PUT/POST bodies are kept, and only up to the limit (the rest is dropped).
            guard body != nil, !bodyTooLarge else { break }
            if body!.count + chunk.readableBytes > DDI.maxBody {
                bodyTooLarge = true
                body = []
            } else {
                body!.append(contentsOf: chunk.readableBytesView)
            }
        case .end:
            bodyTimer?.cancel()
            bodyTimer = nil
            guard let head else { return }
            self.head = nil
            if bodyTooLarge {
                write(.text(413, "request body over \(DDI.maxBody) bytes\n"), for: head, keepAlive: false, context: context)
                return
            }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        server.requests.increment()
        let (path, query) = DeviceRequest.splitTarget(head.uri)
        var headers: [String: String] = [:]
        for (name, value) in head.headers {
            let key = name.lowercased()
            if headers[key] == nil { headers[key] = value }
        }
        var request = DeviceRequest(
            method: head.method.rawValue, path: path, query: query, headers: headers,
            clientAddress: context.channel.remoteAddress?.ipAddress ?? "unknown", isTLS: isTLS)
        request.body = body ?? []
        body = nil
        let keepAlive = head.isKeepAlive
        switch server.api.handle(request) {
        case .response(let response):
            write(response, for: head, keepAlive: keepAlive, context: context)
        case .needDigests(let sha256):
            let (api, path) = (server.api, server.blobPath(sha256))
            answerAfter(request, head: head, keepAlive: keepAlive, context: context, what: "the digests of blob \(sha256)") {
                try api.computeDigests(sha256: sha256, path: path)
            }
        case .needPieces(let sha256, let size):
            let (api, path) = (server.api, server.blobPath(sha256))
            answerAfter(request, head: head, keepAlive: keepAlive, context: context, what: "the pieces of blob \(sha256)") {
                try api.computePieces(sha256: sha256, size: size, path: path)
            }
        case .needConfiguration(let id):
            let api = server.api
            answerAfter(request, head: head, keepAlive: keepAlive, context: context, what: "the configuration image of \(id)") {
                api.prepareConfiguration(id)
            }
        }
    }

    /// Does `work` off the event loop (hashing, building an image), then answers the request;
    /// 500 naming `what` when the work fails or the routes still cannot answer.
    private func answerAfter(
        _ request: DeviceRequest, head: HTTPRequestHead, keepAlive: Bool, context: ChannelHandlerContext, what: String,
        _ work: @escaping @Sendable () throws -> Void
    ) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let api = server.api
        server.threadPool.runIfActive(eventLoop: context.eventLoop, work).whenComplete { result in
            let (handler, context) = loopBound.value
            let response: DeviceResponse
            switch result {
            case .success:
                if case .response(let answer) = api.handle(request) { response = answer } else { response = .text(500, "cannot compute \(what)\n") }
            case .failure(let error):
                handler.server.logger.error("device request work failed", metadata: ["work": "\(what)", "error": "\(error)"])
                response = .text(500, "cannot compute \(what)\n")
            }
            handler.write(response, for: head, keepAlive: keepAlive, context: context)
        }
    }

    /// Opening an image that failed for want of descriptors is tried this often, 20 ms apart.
    static let openAttempts = 25

    private func write(
        _ response: DeviceResponse, for head: HTTPRequestHead, keepAlive: Bool, context: ChannelHandlerContext,
        attempt: Int = 0
    ) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(response.headers.count + 4)
        headers.add(name: "Server", value: "otamesh")
        headers.add(name: "Date", value: server.dates.current())
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let length = response.contentLength
        if response.status != 304 && !(100..<200).contains(response.status) && response.status != 204 {
            headers.add(name: "Content-Length", value: String(length))
        }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let sendsBody = head.method != .HEAD && length > 0
        var file: NIOFileHandle?
        if sendsBody, let sha256 = response.blobSHA256, response.body.contains(where: { if case .file = $0 { true } else { false } }) {
            do {
                file = try NIOFileHandle(_deprecatedPath: server.blobPath(sha256))
            } catch let error as IOError where [EMFILE, ENFILE].contains(error.errnoCode) && attempt < Self.openAttempts {
                // Out of descriptors: idle connections give theirs up (their closes complete on
                // their own event loops), then the open is tried again.
                server.gate?.shedIdle(8)
                inFlight += 1  // busy meanwhile: never shed itself
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(20)) {
                    let (handler, context) = loopBound.value
                    handler.inFlight -= 1
                    guard context.channel.isActive else { return }
                    handler.write(response, for: head, keepAlive: keepAlive, context: context, attempt: attempt + 1)
                }
                return
            } catch {
                // Still out of descriptors, or the blob vanished between catalog and open
                // (evicted): nothing is out yet, so the device is told to come back.
                server.logger.warning("cannot open blob to serve", metadata: ["blob.sha256": "\(sha256)", "error": "\(error)"])
                write(.unavailable(retryAfter: 5), for: head, keepAlive: false, context: context)
                return
            }
        }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)

        let closeAfter: @Sendable (any Channel) -> Void = { channel in if !keepAlive { channel.close(promise: nil) } }
        guard sendsBody else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in closeAfter(channel) }
            awaitRequest(context)
            return
        }
        let channel = context.channel
        inFlight += 1
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        // Rollouts follow a device's download: started, and whether its last byte went out.
        let api = server.api
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let tracked = response.blobSHA256.flatMap { sha in (response.status == 200 || response.status == 206) ? sha : nil }
        var reachesEnd = false
        if let tracked, case .file(let range)? = response.body.last(where: { if case .file = $0 { true } else { false } }) {
            reachesEnd = api.catalog.blobs[tracked].map { range.last + 1 == $0.size } ?? false
        }
        let device = response.device
        if let tracked { api.bodySent(sha256: tracked, device: device, address: address, finished: false, reachedEnd: false) }
        let finish: @Sendable (Result<Void, any Error>) -> Void = { [file, reachesEnd] result in
            try? file?.close()
            handler.value.inFlight -= 1
            if let tracked, case .success = result { api.bodySent(sha256: tracked, device: device, address: address, finished: true, reachedEnd: reachesEnd) }
            if case .failure = result { channel.close(promise: nil) } else { closeAfter(channel) }
        }
        if isTLS {
            writeChunked(response.body, file: file, context: context).whenComplete(finish)
        } else {
            // Cork while the head and the file go out, as nginx's tcp_nopush does: the head rides in
            // the first full segment of the body instead of a packet of its own; uncorking when the
            // write completes pushes the last partial segment.
            let corked = file != nil && (try? context.channel.syncOptions?.setOption(Self.cork, value: 1)) != nil
            // Bytes are counted once written (each segment's write completed), not when the
            // response starts: a client that stalls or leaves adds only what it was sent.
            let sent = server.bytesSent
            let traffic = server.traffic
            for segment in response.body {
                let written = context.eventLoop.makePromise(of: Void.self)
                switch segment {
                case .bytes(let bytes):
                    written.futureResult.whenSuccess {
                        sent.increment(by: bytes.count)
                        traffic.addServed(bytes.count)
                    }
                    context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: written)
                case .file(let range):
                    written.futureResult.whenSuccess {
                        sent.increment(by: Int(clamping: range.count))
                        traffic.addServed(Int(clamping: range.count))
                    }
                    let region = FileRegion(fileHandle: file!, readerIndex: Int(range.first), endIndex: Int(range.last) + 1)
                    context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: written)
                }
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { result in
                if corked { _ = try? channel.syncOptions?.setOption(Self.cork, value: 0) }
                finish(result)
            }
        }
    }

    static let cork = ChannelOptions.Types.SocketOption(
        level: NIOBSDSocket.OptionLevel(rawValue: CInt(IPPROTO_TCP)), name: NIOBSDSocket.Option(rawValue: CInt(TCP_CORK)))

    /// TLS cannot use sendfile: read the ranges in 64 KiB chunks, writing each before reading
    /// the next so a slow device never makes the gateway buffer the whole image.
    private func writeChunked(_ body: [DeviceResponse.Segment], file: NIOFileHandle?, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        var future = context.eventLoop.makeSucceededVoidFuture()
        for segment in body {
            future = future.flatMap {
                let (handler, context) = loopBound.value
                switch segment {
                case .bytes(let bytes):
                    return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))))
                        .map {
                            handler.server.bytesSent.increment(by: bytes.count)
                            handler.server.traffic.addServed(bytes.count)
                        }
                case .file(let range):
                    return handler.server.fileIO.readChunked(
                        fileHandle: file!, fromOffset: range.first, byteCount: Int(range.count), chunkSize: 64 << 10,
                        allocator: context.channel.allocator, eventLoop: context.eventLoop
                    ) { chunk in
                        let (handler, context) = loopBound.value
                        let count = chunk.readableBytes
                        return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(chunk)))).map {
                            handler.server.bytesSent.increment(by: count)
                            handler.server.traffic.addServed(count)
                        }
                    }
                }
            }
        }
        return future.flatMap {
            let (handler, context) = loopBound.value
            return context.writeAndFlush(handler.wrapOutboundOut(.end(nil)))
        }
    }
}

/// The `Date` header, formatted once per second.
final class HTTPDateCache: Sendable {
    private let cached = NIOLockedValueBox((second: Int64(-1), text: ""))

    func current() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = Int64(spec.tv_sec)
        return cached.withLockedValue { cache in
            if cache.second != second { cache = (second, HTTPDate.format(second)) }
            return cache.text
        }
    }
}
