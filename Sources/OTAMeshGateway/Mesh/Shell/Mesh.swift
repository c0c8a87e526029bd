import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshStore

/// The gossip shell: moves the pure ``GossipNode``'s packets over UDP and its push-pull
/// exchanges over TCP (one port for both), sealed with the site keyring. Everything it decides
/// comes from the core; this type only binds sockets, keeps time, and counts.
public final class Mesh: Sendable {
    typealias Node = GossipNode<SystemRandomNumberGenerator>
    typealias Datagrams = NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>
    typealias Stream = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    struct State {
        var node: Node
        var keyring: SiteKeyringFile
        var info: MemberInfo
        /// Push-pulls in flight, by address, so a slow peer is not dialled twice.
        var dialling: Set<String> = []
        /// Static join addresses that answered at least once.
        var joined: Set<String> = []
        /// When each record version first arrived here (wall clock, seconds), by "owner key".
        var arrivals: [String: Double] = [:]

        /// This gateway's own durable records on disk (nil: kept in memory only, as in tests).
        var journal: RecordJournalFile?
        /// Whether the journal's last write or sync failed (logged once per streak).
        var journalFailing = false
        var journalFailure: StoreError?

        /// Writes one of this gateway's records: journalled (if durable), then spread. A journal
        /// that cannot write (a full disk) does not stop the record — a halt must still travel;
        /// the failure is logged and the journal rewritten once there is room.
        @discardableResult
        mutating func put(_ key: String, _ value: [UInt8]) throws(WireError) -> ReplicatedRecords.Record {
            let record = try node.put(key, value)
            do throws(StoreError) { try journal?.append(record) } catch { journalFailure = error }
            return record
        }

        /// Writes one of this gateway's records of `channel`.
        @discardableResult
        mutating func put<C: GossipChannel>(_ channel: C.Type, _ name: String, _ value: C.Value) throws(WireError) -> ReplicatedRecords.Record {
            try put(C.key(name), C.encode(value))
        }

        /// Stamps the records that were news since the last call.
        mutating func noteArrivals(at now: Double) {
            for record in node.takeRecordChanges() { arrivals["\(record.owner) \(record.key)"] = now }
        }
    }

    public let me: NodeAddress
    /// Dates: when records arrived, and where this run's record versions start.
    let wallClock: WallClock
    let state: NIOLockedValueBox<State>
    /// The UDP socket in use: reopened if the kernel makes NIO close it (see ``receiveLoop()``).
    let udp: NIOLockedValueBox<Datagrams>
    let udpHost: String
    let tcp: NIOAsyncChannel<Stream, Never>
    /// Inbound streams not yet authenticated (``PreAuthSlot``).
    let unauthenticatedStreams = NIOLockedValueBox(0)
    let group: any EventLoopGroup
    let seeds: [String]
    let logger: Logger
    let clock = ContinuousClock()
    let epoch: ContinuousClock.Instant
    let keyringPath: String?
    /// Peers found to use another site key, each reported once (``noteForeignKey(_:)``).
    let keyMismatches = NIOLockedValueBox(KeyMismatchReports())

    let received = Counter(label: "otamesh_gossip_packets_received_total")
    let sent = Counter(label: "otamesh_gossip_packets_sent_total")
    let sentBytes = Counter(label: "otamesh_gossip_bytes_sent_total")
    let pushPulls = Counter(label: "otamesh_gossip_pushpull_total", dimensions: [("result", "ok")])
    let pushPullFailures = Counter(label: "otamesh_gossip_pushpull_total", dimensions: [("result", "failed")])

    /// Most bytes in one push-pull frame, and frames in one leg: bounds what a peer can make us hold.
    static let maxFrame = 1 << 20
    static let maxFrames = 512
    /// Inbound streams whose first frame no site key has opened yet, at once: each may buffer up
    /// to ``maxFrame`` before it can be authenticated, so without a cap 200 streams held 200 MB.
    static let maxUnauthenticatedStreams = 16
    /// memberlist's TCPTimeout.
    static let streamTimeout: Duration = .seconds(10)

    /// Binds UDP and TCP on `listen` (port 0: one free port for both) and starts no traffic yet.
    public static func bind(
        listen: ListenAddress, advertise: String?, name: String, keyring: SiteKeyringFile, keyringPath: String?, info: MemberInfo,
        seeds: [String], settings: SWIMSettings = SWIMSettings(), gate: ConnectionGate? = nil, journalPath: String? = nil,
        wallClock: WallClock = .system, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) async throws -> Mesh {
        let settings = try settings.validated()
        // The records this gateway wrote before it restarted, before it says anything.
        var journal: (file: RecordJournalFile, records: [ReplicatedRecords.Record])?
        if let journalPath {
            journal = try RecordJournalFile.open(path: journalPath, owner: name) { problem in
                logger.warning("gossip records journal damaged", metadata: ["journal.problem": "\(problem)"])
            }
            if let count = journal?.records.count, count > 0 {
                logger.info("gossip records restored", metadata: ["journal.records": "\(count)", "journal.path": "\(journalPath)"])
            }
        }
        var port = listen.port
        var lastError: (any Error)?
        for _ in 0..<8 {
            let tcp: NIOAsyncChannel<Stream, Never> = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: listen.host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let gate { try channel.pipeline.syncOperations.addHandler(ConnectionGateHandler(gate: gate)) }
                        return try Stream(wrappingChannelSynchronously: channel)
                    }
                }
            let bound = tcp.channel.localAddress?.port ?? port
            do {
                let udp = try await bindDatagrams(host: listen.host, port: bound, group: group, logger: logger)
                let ip = try advertisedIP(listen: listen, configured: advertise)
                let me = NodeAddress(name: name, ip: ip, port: UInt16(bound))
                return Mesh(
                    me: me, udp: udp, tcp: tcp, keyring: keyring, keyringPath: keyringPath, info: info, seeds: seeds,
                    settings: settings, journal: journal, wallClock: wallClock, group: group, logger: logger)
            } catch {
                // Port 0 gave a TCP port whose UDP twin is taken: try another.
                try? await tcp.channel.close()
                lastError = error
                guard listen.port == 0 else { throw error }
                port = 0
            }
        }
        throw lastError ?? MeshError.bind("no port free for both UDP and TCP")
    }

    static func bindDatagrams(host: String, port: Int, group: any EventLoopGroup, logger: Logger) async throws -> Datagrams {
        try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DatagramErrors(logger: logger))
                    return try Datagrams(wrappingChannelSynchronously: channel)
                }
            }
    }

    init(
        me: NodeAddress, udp: Datagrams, tcp: NIOAsyncChannel<Stream, Never>, keyring: SiteKeyringFile, keyringPath: String?, info: MemberInfo,
        seeds: [String], settings: SWIMSettings, journal: (file: RecordJournalFile, records: [ReplicatedRecords.Record])? = nil,
        wallClock: WallClock = .system, group: any EventLoopGroup, logger: Logger
    ) {
        self.me = me
        self.wallClock = wallClock
        self.udp = NIOLockedValueBox(udp)
        udpHost = udp.channel.localAddress?.ipAddress ?? "0.0.0.0"
        self.tcp = tcp
        self.seeds = seeds
        self.group = group
        self.logger = logger
        self.keyringPath = keyringPath
        epoch = clock.now
        var info = info
        info.keys = keyring.keyring.keys.map(SiteKeyring.fingerprint)
        state = NIOLockedValueBox(
            State(
                node: Node(me: me, metadata: info.encoded(), settings: settings, random: SystemRandomNumberGenerator()),
                keyring: keyring, info: info))
        // Record versions keep increasing across restarts (peers hold the last run's records),
        // and the records of earlier runs are this gateway's again.
        state.withLockedValue { state in
            state.journal = journal?.file
            state.node.restoreRecords(journal?.records ?? [])
            state.node.startRecordVersions(after: wallClock.now().microseconds)
        }
    }

    /// The IP peers should dial: the configured one, the listen address if specific, else the
    /// first non-loopback IPv4 (then IPv6) interface address, else loopback.
    static func advertisedIP(listen: ListenAddress, configured: String?) throws -> [UInt8] {
        if let configured { return try packed(SocketAddress(ipAddress: configured, port: 0)) }
        let any = ["0.0.0.0", "::", ""]
        if !any.contains(listen.host) { return try packed(SocketAddress.makeAddressResolvingHost(listen.host, port: 0)) }
        let devices = (try? System.enumerateDevices()) ?? []
        let candidates = devices.compactMap(\.address).filter { address in
            guard let ip = address.ipAddress else { return false }
            return !ip.hasPrefix("127.") && ip != "::1" && !ip.lowercased().hasPrefix("fe80")
        }
        if let v4 = candidates.first(where: { $0.protocol == .inet }) { return try packed(v4) }
        if let v6 = candidates.first { return try packed(v6) }
        return [127, 0, 0, 1]
    }

    static func packed(_ address: SocketAddress) throws -> [UInt8] {
        switch address {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default: throw MeshError.bind("\(address) is not an IP address")
        }
    }

    var now: Double {
        let elapsed = clock.now - epoch
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    // MARK: Running

    /// Serves until cancelled: receives packets, ticks the core every 50 ms, answers and starts
    /// push-pulls, joins the static peers; on the way out tells the others it leaves.
    public func run() async {
        do {
            try await tcp.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.receiveLoop() }
                    group.addTask { await self.accept(connections) }
                    group.addTask { await self.timers() }
                    group.addTask { await self.joinSeeds() }
                }
            }
        } catch {
            logger.error("gossip stopped", metadata: ["error": "\(error)"])
        }
        state.withLockedValue { $0.journal?.close() }
    }

    /// Closes the sockets of a mesh that never ran (a start that failed after binding it):
    /// NIO requires every async channel to be finished, not just dropped.
    func close() async {
        state.withLockedValue { $0.journal?.close() }
        try? await tcp.executeThenClose { _ in }
        try? await udp.withLockedValue { $0 }.executeThenClose { _, _ in }
    }

    /// Receives until cancelled (then says goodbye while the socket is still open). NIO closes
    /// a UDP channel on a send error it does not class as recoverable — a firewall's EPERM, a
    /// vanished route's ENETUNREACH — which would silence this gateway for good; so a closed
    /// socket is reopened on the same address, and counted.
    func receiveLoop() async {
        var lastWarning: ContinuousClock.Instant?
        while !Task.isCancelled {
            let channel = udp.withLockedValue { $0 }
            do {
                try await channel.executeThenClose { inbound, _ in
                    await self.receive(inbound)
                    if Task.isCancelled { self.leave() }
                }
            } catch {
                logger.debug("gossip UDP socket ended", metadata: ["error": "\(error)"])
            }
            guard !Task.isCancelled else { return }
            Counter(label: "otamesh_gossip_socket_reopens_total").increment()
            // Under a firewall that refuses every send to one peer this repeats: warn once a minute.
            if lastWarning.map({ clock.now - $0 > .seconds(60) }) ?? true {
                lastWarning = clock.now
                logger.warning(
                    "gossip UDP socket closed by the system (a send refused: firewall or no route?); reopening",
                    metadata: ["gossip.address": "\(udpHost):\(me.port)"])
            }
            var delay = 0.1
            while !Task.isCancelled {
                do {
                    let fresh = try await Self.bindDatagrams(host: udpHost, port: Int(me.port), group: group, logger: logger)
                    udp.withLockedValue { $0 = fresh }
                    break
                } catch {
                    logger.debug("gossip UDP socket not reopened yet", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(Int64(delay * 1_000)))
                    delay = min(delay * 2, 5)
                }
            }
        }
    }

    /// Graceful leave: everyone hears "dead" from this node itself, so nobody waits out a
    /// suspicion timeout for a gateway that shut down on purpose.
    func leave() {
        let (targets, message) = state.withLockedValue { state in
            (
                state.node.swim.others.filter { $0.status != .dead }.map(\.address),
                WireMessage.dead(node: me.name, incarnation: state.node.swim.incarnation, from: me.name)
            )
        }
        send(targets.map { SWIM<SystemRandomNumberGenerator>.Outbound(to: $0, messages: [message]) })
    }

    func receive(_ inbound: NIOAsyncChannelInboundStream<AddressedEnvelope<ByteBuffer>>) async {
        do {
            for try await envelope in inbound {
                received.increment()
                let source = Self.shown(envelope.remoteAddress)
                guard case .messages(let messages) = open(Array(envelope.data.readableBytesView), from: source) else {
                    continue
                }
                let replies = state.withLockedValue { state in
                    defer { state.noteArrivals(at: self.wallClock.now().seconds) }
                    return state.node.receive(messages, now: now)
                }
                send(replies)
            }
        } catch {
            logger.debug("gossip receive ended", metadata: ["error": "\(error)"])
        }
    }

    /// What became of a packet or frame.
    enum Opened {
        case messages([WireMessage])
        /// Well formed for this wire version, but no site key opens it: a gateway with another key.
        case foreignKey
        case dropped
    }

    /// Opens and decodes a packet or frame; anything not ours is counted and logged at debug,
    /// and a sender with another site key is reported once (`reportAs`, default `source`).
    func open(_ bytes: [UInt8], from source: String, reportAs: String? = nil) -> Opened {
        let keyring = state.withLockedValue { $0.keyring.keyring }
        switch keyring.open(bytes) {
        case .failure(let rejection):
            Counter(label: "otamesh_gossip_dropped_total", dimensions: [("reason", rejection.label)]).increment()
            logger.debug("gossip packet dropped", metadata: ["packet.from": "\(source)", "packet.reason": "\(rejection)"])
            guard rejection == .unauthenticated else { return .dropped }
            noteForeignKey(reportAs ?? source)
            return .foreignKey
        case .success(let payload):
            do { return .messages(try WireCodec.decode(payload)) } catch {
                Counter(label: "otamesh_gossip_dropped_total", dimensions: [("reason", "malformed")]).increment()
                logger.debug("gossip packet dropped", metadata: ["packet.from": "\(source)", "packet.reason": "\(error)"])
                return .dropped
            }
        }
    }

    func seal(_ messages: [WireMessage]) throws -> [UInt8] {
        let payload = try WireCodec.encode(messages)
        return state.withLockedValue { $0.keyring.keyring.seal(payload) }
    }

    /// Sends packets without waiting (UDP: fire and forget; the core retransmits by design).
    func send(_ packets: [SWIM<SystemRandomNumberGenerator>.Outbound]) {
        for packet in packets {
            do {
                let bytes = try seal(packet.messages)
                let address = try SocketAddress(packedIPAddress: ByteBuffer(bytes: packet.to.ip), port: Int(packet.to.port))
                udp.withLockedValue { $0 }.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)), promise: nil)
                sent.increment()
                sentBytes.increment(by: bytes.count)
            } catch {
                Counter(label: "otamesh_gossip_send_failures_total").increment()
                logger.debug("gossip send failed", metadata: ["packet.to": "\(packet.to)", "error": "\(error)"])
            }
        }
    }

    /// The 50 ms heartbeat of the core: probes, gossip rounds, suspicion timers, push-pull.
    func timers() async {
        await withDiscardingTaskGroup { group in
            var ticks = 0
            while !Task.isCancelled {
                let (packets, events, pushPulls) = state.withLockedValue { state in
                    let now = self.now
                    let packets = state.node.tick(now: now)
                    return (packets, state.node.takeEvents(), [state.node.duePushPull(now: now), state.node.dueReconnect(now: now)].compactMap { $0 })
                }
                send(packets)
                for event in events { log(event) }
                for peer in pushPulls {
                    group.addTask {
                        guard let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: peer.ip), port: Int(peer.port)) else { return }
                        _ = await self.pushPull(with: address)
                    }
                }
                ticks += 1
                if ticks % 20 == 0 {
                    recordGauges()
                    followRotation()
                    syncJournal()
                }
                do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
            }
        }
    }

    /// Makes the journal's appends durable (once a second) and reports a journal that cannot
    /// write, once when it starts failing and once when it has caught up.
    func syncJournal() {
        let (failure, recovered) = state.withLockedValue { state -> (StoreError?, Bool) in
            guard state.journal != nil else { return (nil, false) }
            do throws(StoreError) { try state.journal?.sync() } catch { state.journalFailure = error }
            let failure = state.journalFailure
            state.journalFailure = nil
            defer { state.journalFailing = failure != nil || state.journal?.behind == true }
            return (state.journalFailing ? nil : failure, state.journalFailing && failure == nil && state.journal?.behind == false)
        }
        if let failure {
            logger.error(
                "gossip records journal cannot write: this gateway's records stay in memory and are written once the disk has room",
                metadata: ["error": "\(failure)"])
        }
        if recovered { logger.notice("gossip records journal written again") }
    }

    func log(_ event: SWIM<SystemRandomNumberGenerator>.Event) {
        switch event {
        case .joined(let node): logger.info("gossip member alive", metadata: ["member.name": "\(node)"])
        case .suspected(let name): logger.notice("gossip member suspect", metadata: ["member.name": "\(name)"])
        case .failed(let name):
            if state.withLockedValue({ $0.node.swim.members[name]?.left }) == true {
                logger.notice("gossip member left", metadata: ["member.name": "\(name)"])
            } else {
                logger.warning("gossip member failed", metadata: ["member.name": "\(name)"])
            }
        case .refuted(let incarnation): logger.notice("gossip: refuted a suspicion of this node", metadata: ["member.incarnation": "\(incarnation)"])
        }
    }

    func recordGauges() {
        let members = state.withLockedValue { $0.node.swim.others }
        for status in [SWIMMember.Status.alive, .suspect, .dead] {
            Gauge(label: "otamesh_gossip_members", dimensions: [("status", Self.statusName(status))])
                .record(members.filter { $0.status == status && !$0.left }.count)
        }
        Gauge(label: "otamesh_gossip_members", dimensions: [("status", "left")]).record(members.filter(\.left).count)
    }

    static func statusName(_ status: SWIMMember.Status) -> String {
        switch status {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "failed"
        }
    }
}
