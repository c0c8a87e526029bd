import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// The device side of the ArduinoOTA twin's TCP conversations, each one task reading the
/// connection's bytes in order (``TwinSessionHandler``) and asking the twin for decisions.
extension ArduinoOTATwin {
    /// Classic ArduinoOTA after the device connected back: read the image, acknowledge each
    /// read with the count written (ASCII), Update.end, then `OK` or Update.printError's text.
    nonisolated func receiveClassic(_ invitation: ArduinoOTAInvitation, on channel: any Channel, bytes: TwinBytes) async {
        var bytes = bytes
        var image: [UInt8] = []
        image.reserveCapacity(invitation.size)
        while image.count < invitation.size {
            guard let chunk = await bytes.next(upTo: min(1460, invitation.size - image.count)) else {
                await abandon("connection lost after \(image.count) of \(invitation.size) bytes", dialect: "arduino")
                return
            }
            image += chunk
            if await receiving(image.count, of: invitation.size) {
                channel.close(promise: nil)
                return
            }
            try? await channel.writeAndFlush(ByteBuffer(string: String(chunk.count))).get()
        }
        let answer: String
        switch await end(image, md5: invitation.md5, dialect: "arduino", filesystem: invitation.command == ArduinoOTAInvitation.filesystemCommand) {
        case nil:
            answer = "OK"
        case .md5(let expected, let calculated)?:
            answer = settings.chip == "esp8266" ? "ERROR[7]: MD5 Failed: expected:\(expected), calculated:\(calculated)\r\n" : "MD5 Check Failed\r\n"
        case .image(let problem)?:
            answer =
                settings.chip == "esp8266"
                ? "ERROR[10]: \(problem)\r\n" : (image.first == 0xE9 ? "Could Not Activate The Firmware\r\n" : "Wrong Magic Byte\r\n")
        }
        try? await channel.writeAndFlush(ByteBuffer(string: answer)).get()
        try? await channel.close()
    }

    /// ESPHome native OTA v1, the device side (esphome/components/ota, protocol version 1).
    nonisolated func serveESPHome(on channel: any Channel, bytes: TwinBytes) async {
        var bytes = bytes
        func send(_ answer: [UInt8]) async { try? await channel.writeAndFlush(ByteBuffer(bytes: answer)).get() }
        func fail(_ code: UInt8, _ reason: String) async {
            await abandon(reason, dialect: "esphome")
            await send([code])
            try? await channel.close()
        }
        guard let magic = await bytes.next(exactly: 5) else { return }
        guard magic == [0x6C, 0x26, 0xF7, 0x5C, 0x45] else { return await fail(128, "invalid magic bytes") }
        await send([0x00, 0x01])
        guard await bytes.next(exactly: 1) != nil else { return }
        await send([64])
        if let password = settings.password {
            let nonce = ImageFacts.md5Hex(Array(String(UInt64.random(in: 0...UInt64.max)).utf8))
            await send([1] + Array(nonce.utf8))
            guard let cnonce = await bytes.next(exactly: 32), let response = await bytes.next(exactly: 32) else { return }
            let expected = ImageFacts.md5Hex(Array(password.utf8) + Array(nonce.utf8) + cnonce)
            guard String(decoding: response, as: UTF8.self) == expected else {
                await event("auth-failed", [("dialect", "esphome")])
                await send([130])
                try? await channel.close()
                return
            }
        }
        await send([65])
        guard let sizeBytes = await bytes.next(exactly: 4) else { return }
        let size = sizeBytes.reduce(0) { $0 << 8 | Int($1) }
        guard size > 0, size <= 64 << 20 else { return await fail(129, "bad size \(size)") }
        if await begin(size: size, dialect: "esphome") != nil {
            await send([settings.chip == "esp8266" ? 136 : 137])
            try? await channel.close()
            return
        }
        await send([66])
        guard let md5 = await bytes.next(exactly: 32) else { return await abandon("connection lost before the MD5", dialect: "esphome") }
        await send([67])
        var image: [UInt8] = []
        image.reserveCapacity(size)
        while image.count < size {
            guard let chunk = await bytes.next(upTo: min(8192, size - image.count)) else {
                return await abandon("connection lost after \(image.count) of \(size) bytes", dialect: "esphome")
            }
            image += chunk
            if await receiving(image.count, of: size) {
                channel.close(promise: nil)
                return
            }
        }
        await send([68])
        guard await end(image, md5: String(decoding: md5, as: UTF8.self), dialect: "esphome") == nil else {
            await send([132])
            try? await channel.close()
            return
        }
        await send([69])
        // The host's acknowledgement (or its close); the device restarts either way.
        _ = await bytes.next(exactly: 1)
        try? await channel.close()
    }
}

/// The bytes of one connection, in order, for a session task.
struct TwinBytes {
    var iterator: AsyncStream<[UInt8]>.AsyncIterator
    var buffer: [UInt8] = []

    /// Exactly `count` bytes; nil when the connection ended first.
    mutating func next(exactly count: Int) async -> [UInt8]? {
        while buffer.count < count {
            guard let more = await iterator.next() else { return nil }
            buffer += more
        }
        defer { buffer.removeFirst(count) }
        return Array(buffer.prefix(count))
    }

    /// Between 1 and `limit` bytes; nil when the connection ended.
    mutating func next(upTo limit: Int) async -> [UInt8]? {
        if buffer.isEmpty {
            guard let more = await iterator.next() else { return nil }
            buffer = more
        }
        let count = min(limit, buffer.count)
        defer { buffer.removeFirst(count) }
        return Array(buffer.prefix(count))
    }
}

/// Hands a TCP connection's bytes to one session task; tracked by the twin so a reboot closes it.
final class TwinSessionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let twin: ArduinoOTATwin
    let session: @Sendable (any Channel, TwinBytes) async -> Void
    private let stream: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation

    init(twin: ArduinoOTATwin, session: @escaping @Sendable (any Channel, TwinBytes) async -> Void) {
        self.twin = twin
        self.session = session
        (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let (twin, session, stream) = (twin, session, stream)
        Task {
            guard await twin.opened(channel) else {
                channel.close(promise: nil)
                return
            }
            await session(channel, TwinBytes(iterator: stream.makeAsyncIterator()))
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        continuation.yield(buffer.readBytes(length: buffer.readableBytes) ?? [])
    }

    /// A host silent this long is given up, as the firmware's socket timeouts do (ESP32
    /// ArduinoOTA: 1 s per try; ESPHome: 20 s in the handshake).
    static func idleLimit() -> IdleStateHandler { IdleStateHandler(readTimeout: .seconds(10)) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        continuation.finish()
        let (twin, channel) = (twin, context.channel)
        Task { await twin.closed(channel) }
        context.fireChannelInactive()
    }
}

/// The classic invitation port: each datagram goes to the twin, its answer back to the sender.
final class ArduinoInvitationHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let twin: ArduinoOTATwin

    init(twin: ArduinoOTATwin) { self.twin = twin }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: min(envelope.data.readableBytes, 512)) ?? []
        let remote = envelope.remoteAddress
        let (twin, channel) = (twin, context.channel)
        Task {
            let (reply, connect) = await twin.datagram(bytes)
            if let reply {
                try? await channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(string: reply))).get()
            }
            if let connect { twin.connectBack(to: remote, connect) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// `GET /version` → `{"version", "variant"}` (what the firmware around ArduinoOTA serves).
final class VersionHTTPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart

    let twin: ArduinoOTATwin

    init(twin: ArduinoOTATwin) { self.twin = twin }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(context, eventLoop: loop)
        let twin = twin
        Task {
            let path = head.uri.split(separator: "?").first.map(String.init) ?? ""
            let (status, text) = head.method == .GET && path == "/version" ? (200, await twin.versionAnswer()) : (404, "Not found: \(head.uri)")
            loop.execute {
                TwinConnection.respond(bound.value, status: status, contentType: status == 200 ? "application/json" : "text/plain", text: text)
            }
        }
    }
}
