import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshRollout
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Pushes to ArduinoOTA devices (family `arduino-ota`): the SwiftNIO shell that runs
/// ``ArduinoOTAPush``. The gateway plays the host tool: in the `arduino` dialect it invites
/// the device over UDP and serves the image on a TCP port the device connects back to (bound
/// to the local address that reaches the device); in the `esphome` dialect it connects to the
/// device's OTA port. The image streams from its blob file in chunks, never whole in memory.
///
/// Neither dialect reports a version: confirmation polls `GET http://HOST:VERSION_PORT/VERSION_PATH`
/// (a JSON object's `version`, and `variant` when it names one, or the first line of plain text).
///
/// Per device, the registry may set: the password (``PushTarget/credentials``; the user is
/// ignored), and the options `dialect` (`arduino` | `esphome`), `version_port` (default 80) and
/// `version_path` (default `/version`).
public struct ArduinoOTAAdapter: PushAdapter, CustomStringConvertible {
    public let family = DeviceFamily.arduinoOTA
    public var timing: ArduinoOTAPush.Timing
    public var timeouts: ArduinoOTAPush.Timeouts
    /// Per request of the version probe.
    public var requestTimeout: Duration
    public var dialect: ArduinoOTADialect
    public var versionPort: Int
    public var versionPath: String
    /// The OTA password (a device's own, from the registry, comes first).
    public var credentials: PushCredentials?

    public init(
        timing: ArduinoOTAPush.Timing = .init(), timeouts: ArduinoOTAPush.Timeouts = .init(), requestTimeout: Duration = .seconds(5),
        dialect: ArduinoOTADialect = .arduino, versionPort: Int = 80, versionPath: String = "/version", credentials: PushCredentials? = nil
    ) {
        self.timing = timing
        self.timeouts = timeouts
        self.requestTimeout = requestTimeout
        self.dialect = dialect
        self.versionPort = versionPort
        self.versionPath = versionPath
        self.credentials = credentials
    }

    public var description: String {
        "ArduinoOTAAdapter(\(dialect.rawValue), version at :\(versionPort)\(versionPath), \(credentials == nil ? "no password" : "password set"))"
    }

    /// ArduinoOTA's default port when an address names none: 8266 on ESP8266, 3232 on ESP32
    /// (ArduinoOTA.cpp `begin()`); ESPHome uses the same defaults (see ``DeviceProbe`` for its
    /// other platforms).
    public static func defaultPort(variant: String?) -> Int {
        variant.flatMap(ArduinoOTAWire.chip(ofVariant:)) == "esp8266" ? 8266 : 3232
    }

    /// Bytes per write of the image (one chunk in flight at a time).
    static let chunkSize = 16 << 10

    public func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String
    {
        var dialect = dialect
        if let name = device.options["dialect"] {
            guard let named = ArduinoOTADialect(rawValue: name) else {
                throw PushFailure(.refused, "unknown ArduinoOTA dialect '\(name)' (known: arduino, esphome)")
            }
            dialect = named
        }
        var versionPort = versionPort
        if let text = device.options["version_port"] {
            guard let port = Int(text), (1...65535).contains(port) else { throw PushFailure(.refused, "option version_port '\(text)' is not a port") }
            versionPort = port
        }
        let versionPath = device.options["version_path"] ?? versionPath
        var device = device
        // The admin's OTA port: ESPHome announces its API port, not the OTA one, so discovery
        // assumes the platform's default; a device configured otherwise says so here.
        if let text = device.options["ota_port"] {
            guard let port = Int(text), (1...65535).contains(port) else { throw PushFailure(.refused, "option ota_port '\(text)' is not a port") }
            device.port = port
        }
        var probe = device
        probe.port = versionPort
        let versionURL = PushHTTPShell.base(of: probe) + (versionPath.hasPrefix("/") ? versionPath : "/" + versionPath)
        let credentials = device.credentials ?? credentials
        return try await PushHTTPShell.withClient(for: device, requestTimeout: requestTimeout) { client in
            await run(image, to: device, dialect: dialect, credentials: credentials, versionURL: versionURL, client: client, progress: progress)
        }
    }

    private func run(
        _ image: PushImage, to device: PushTarget, dialect: ArduinoOTADialect, credentials: PushCredentials?, versionURL: String,
        client: HTTPClient, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void
    ) async -> Result<String, PushFailure> {
        let (stream, events) = PushEvents<ArduinoOTAPush.Event>.make()
        let link = OTALink(device: device, events: events, connectTimeout: .milliseconds(timeouts.reply))
        defer { link.close() }
        let machine = ArduinoOTAPush(
            image: image, target: device, dialect: dialect, credentials: credentials, timing: timing, timeouts: timeouts,
            now: PushHTTPShell.milliseconds(), random: Double.random(in: 0..<1), nonceSeed: UInt64.random(in: 0...UInt64.max))
        // The device's answers arrive on sockets as they please: the machine's own timers bound
        // every wait. Events of a socket closed since (a retry's old one) are dropped.
        return await PushDriver.run(machine, events: stream, events, answersOnly: false, accept: { $0 == 0 || $0 == link.generation }) {
            action, spawn in
            switch action {
            case .readImage:
                events.yield(Self.facts(of: image.file))
            case .fetchVersion:
                events.yield(await fetchVersion(client, url: versionURL, configuration: image.configID != nil))
            case .listen:
                await link.listen()
            case .connect:
                await link.connect()
            case .sendDatagram(let bytes):
                link.sendDatagram(bytes)
            case .send(let bytes):
                await link.send(bytes)
            case .streamImage:
                let generation = link.generation
                spawn { await link.stream(file: image.file, chunkSize: Self.chunkSize, generation: generation) }
            case .closeLink:
                link.close()
            case .progress, .succeeded, .failed, .wait:
                break
            }
        } progress: {
            progress($0)
        }
    }

    /// Size, MD5 and header chip of the image file, read in chunks.
    static func facts(of file: String) -> ArduinoOTAPush.Event {
        let descriptor = open(file, O_RDONLY)
        guard descriptor >= 0 else { return .imageUnreadable("cannot open \(file)") }
        defer { Glibc.close(descriptor) }
        var md5 = Insecure.MD5()
        var size: Int64 = 0
        var header: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 { return .imageUnreadable("read error in \(file)") }
            if count == 0 { break }
            md5.update(data: chunk[0..<count])
            if header.count < 64 { header += chunk[0..<min(count, 64 - header.count)] }
            size += Int64(count)
        }
        let digest = md5.finalize().map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        return .imageRead(.init(size: size, md5: digest, chip: ArduinoOTAWire.chip(ofHeader: header)))
    }

    /// The device's version (or, after a filesystem push, the `config` its version endpoint
    /// reports: the config-id of the configuration it mounted).
    private func fetchVersion(_ client: HTTPClient, url: String, configuration: Bool) async -> ArduinoOTAPush.Event {
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .init(requestTimeout))
            let body = try await response.body.collect(upTo: 64 << 10)
            guard response.status == .ok else { return .versionFailed("GET \(url) answered \(response.status.code)") }
            let text = String(buffer: body)
            if configuration {
                guard let config = Self.field("config", fromBody: text) else {
                    return .versionFailed("GET \(url) named no config (after a filesystem push the version endpoint answers {\"config\": \"cfg-…\"})")
                }
                return .version(config, variant: nil)
            }
            guard let version = HTTPUploadAdapter.version(fromBody: text) else { return .versionFailed("GET \(url) named no version") }
            return .version(version, variant: Self.variant(fromBody: text))
        } catch {
            return .versionFailed(PushHTTPShell.describe(error))
        }
    }

    /// A JSON version answer's `variant`, if it names one.
    static func variant(fromBody body: String) -> String? { field("variant", fromBody: body) }

    /// A JSON version answer's string `name` (at most 64 characters), if it has one.
    static func field(_ name: String, fromBody body: String) -> String? {
        let text = body.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        return (object[name] as? String).flatMap { $0.isEmpty || $0.count > 64 ? nil : $0 }
    }
}

/// The sockets of one ArduinoOTA push: the UDP socket to the device and the TCP listener the
/// device connects back to (arduino), or the TCP connection to the device (esphome). Every
/// event it reports carries the link's generation; ``close()`` starts a new one, so events of
/// an old socket are told apart from the current one's.
final class OTALink: Sendable {
    struct State: Sendable {
        var generation = 1
        var datagram: (any Channel)?
        var listener: (any Channel)?
        var stream: (any Channel)?
    }

    let device: PushTarget
    let events: PushEvents<ArduinoOTAPush.Event>
    let connectTimeout: TimeAmount
    private let state = Mutex(State())
    /// Image bytes written on the current connection.
    let sent = Atomic<Int64>(0)

    init(device: PushTarget, events: PushEvents<ArduinoOTAPush.Event>, connectTimeout: TimeAmount) {
        self.device = device
        self.events = events
        self.connectTimeout = connectTimeout
    }

    var generation: Int { state.withLock { $0.generation } }

    private func emit(_ event: ArduinoOTAPush.Event, link: Int) { events.yield(event, link: link) }

    /// arduino: a UDP socket connected to the device (its local address is the one that
    /// reaches the device) and a TCP listener on that address, port 0.
    func listen() async {
        let link = generation
        let group = MultiThreadedEventLoopGroup.singleton
        do {
            let udp = try await DatagramBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(OTADatagramHandler(link: self, generation: link)) }
                }
                .connect(host: device.host, port: device.port).get()
            guard keep(udp, as: \.datagram, generation: link) else { return }
            guard let local = udp.localAddress?.ipAddress, let deviceIP = udp.remoteAddress?.ipAddress else {
                emit(.linkFailed("no local address reaches \(device.host)"), link: link)
                return
            }
            let server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    // The device connects once, from its own address; any other connection is closed.
                    guard channel.remoteAddress?.ipAddress == deviceIP, self.keep(channel, as: \.stream, generation: link, onlyFirst: true) else {
                        return channel.close()
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(OTAStreamHandler(link: self, generation: link, announce: true))
                    }
                }
                .bind(host: local, port: 0).get()
            guard keep(server, as: \.listener, generation: link), let port = server.localAddress?.port else { return }
            emit(.listening(port: port), link: link)
        } catch {
            emit(.linkFailed(PushHTTPShell.describe(error)), link: link)
        }
    }

    /// esphome: the TCP connection to the device's OTA port.
    func connect() async {
        let link = generation
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(OTAStreamHandler(link: self, generation: link, announce: false))
                    }
                }
                .connect(host: device.host, port: device.port).get()
            guard keep(channel, as: \.stream, generation: link) else { return }
            emit(.connected, link: link)
        } catch {
            emit(.linkFailed(PushHTTPShell.describe(error)), link: link)
        }
    }

    /// Keeps `channel` as the link's while `generation` is current (and, `onlyFirst`, the slot
    /// is empty); else closes it.
    @discardableResult
    func keep(_ channel: any Channel, as slot: WritableKeyPath<State, (any Channel)?>, generation: Int, onlyFirst: Bool = false) -> Bool {
        let kept = state.withLock { state in
            guard state.generation == generation, !onlyFirst || state[keyPath: slot] == nil else { return false }
            state[keyPath: slot] = channel
            return true
        }
        if !kept { channel.close(promise: nil) }
        return kept
    }

    func sendDatagram(_ bytes: [UInt8]) {
        guard let channel = state.withLock({ $0.datagram }) else { return }
        channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }

    /// Writes `bytes` on the TCP connection and waits until they went out (a failed write
    /// shows as the connection's close).
    func send(_ bytes: [UInt8]) async {
        guard let channel = state.withLock({ $0.stream }) else { return }
        try? await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Streams the file on the TCP connection of link `generation`, one chunk in flight at a
    /// time: `.sending` after each chunk, `.sent` after the last. Ends when the file is sent,
    /// the task is cancelled or the connection closes (``close()`` closes it).
    func stream(file: String, chunkSize: Int, generation link: Int) async {
        guard let channel = state.withLock({ $0.generation == link ? $0.stream : nil }) else {
            emit(.closed("no connection to stream the image on", sentBytes: 0), link: link)
            return
        }
        sent.store(0, ordering: .relaxed)
        do {
            let descriptor = open(file, O_RDONLY)
            guard descriptor >= 0 else {
                emit(.closed("cannot open \(file)", sentBytes: 0), link: link)
                channel.close(promise: nil)
                return
            }
            defer { Glibc.close(descriptor) }
            var chunk = [UInt8](repeating: 0, count: chunkSize)
            while !Task.isCancelled {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
                if count == 0 { break }
                guard count > 0 else {
                    emit(.closed("read error in \(file)", sentBytes: sent.load(ordering: .relaxed)), link: link)
                    channel.close(promise: nil)
                    return
                }
                do {
                    try await channel.writeAndFlush(ByteBuffer(bytes: chunk[0..<count])).get()
                } catch {
                    return  // the handler reports the close
                }
                sent.add(Int64(count), ordering: .relaxed)
                emit(.sending, link: link)
            }
            if !Task.isCancelled { emit(.sent, link: link) }
        }
    }

    /// Closes every socket of the link; later events of them are dropped.
    func close() {
        let old = state.withLock { state in
            let old = state
            state = State(generation: state.generation + 1)
            return old
        }
        for channel in [old.datagram, old.listener, old.stream].compactMap({ $0 }) { channel.close(promise: nil) }
    }

    func received(_ event: ArduinoOTAPush.Event, generation: Int) { emit(event, link: generation) }
}

/// The device's UDP answers.
final class OTADatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let link: OTALink
    let generation: Int

    init(link: OTALink, generation: Int) {
        self.link = link
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        let bytes = envelope.data.readBytes(length: min(envelope.data.readableBytes, 512)) ?? []
        link.received(.datagram(bytes), generation: generation)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable on a connected UDP socket: the invitation's answer will not come;
        // the machine's reply timeout decides.
    }
}

/// The TCP connection to (esphome) or from (arduino) the device.
final class OTAStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let link: OTALink
    let generation: Int
    /// Reports `.connected` when active (the device connected back).
    let announce: Bool
    /// Why the connection failed, when an error came before the close (event loop only).
    private var failure: String?

    init(link: OTALink, generation: Int, announce: Bool) {
        self.link = link
        self.generation = generation
        self.announce = announce
    }

    func channelActive(context: ChannelHandlerContext) {
        if announce { link.received(.connected, generation: generation) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        link.received(.received(buffer.readBytes(length: buffer.readableBytes) ?? []), generation: generation)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failure = failure ?? String(describing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.received(.closed(failure ?? "connection closed by the device", sentBytes: link.sent.load(ordering: .relaxed)), generation: generation)
        context.fireChannelInactive()
    }
}

extension ArduinoOTAPush: PushMachine {
    static var started: Event { .started }
    static var tick: Event { .tick }
    static func step(_ action: Action) -> PushStep {
        switch action {
        case .progress(let phase): .progress(phase)
        case .succeeded(let version): .succeeded(version)
        case .failed(let failure): .failed(failure)
        case .wait(let until): .wait(until: until)
        case .readImage, .fetchVersion, .listen, .connect, .sendDatagram, .send, .streamImage, .closeLink: .perform
        }
    }
}
