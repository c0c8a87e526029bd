import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OTAMeshCommon
import OTAMeshGossip
import OTAMeshStore

/// Joining static peers and push-pull over TCP: the stream legs around the core's three-leg exchange.
extension Mesh {
    // MARK: Joining

    /// Joins every static peer with a push-pull (as memberlist's Join does), retrying those that
    /// never answered, and all of them again whenever this node is alone.
    func joinSeeds() async {
        guard !seeds.isEmpty else { return }
        var delay = 1.0
        var reported: Set<String> = []
        while !Task.isCancelled {
            let (alone, joined) = state.withLockedValue { state in
                (!state.node.swim.others.contains { $0.status == .alive }, state.joined)
            }
            for seed in seeds where alone || !joined.contains(seed) {
                guard let listen = ListenAddress(seed), let address = try? SocketAddress.makeAddressResolvingHost(listen.host, port: listen.port) else {
                    if reported.insert(seed).inserted { logger.error("gossip.join \(seed): not a HOST:PORT that resolves") }
                    continue
                }
                if await pushPull(with: address) {
                    _ = state.withLockedValue { $0.joined.insert(seed) }
                    reported.remove(seed)
                } else if usesForeignKey("\(Self.shown(address))") {
                    // Reported once by pushPull as a gateway with another site key.
                } else if reported.insert(seed).inserted {
                    logger.warning("gossip.join \(seed): no answer yet; retrying")
                }
            }
            do { try await Task.sleep(for: .milliseconds(Int64(delay * 1_000))) } catch { return }
            delay = min(delay * 2, 30)
        }
    }

    /// A join candidate from discovery: push-pull with it unless it is already a live member.
    public func candidate(name: String, address: SocketAddress) async {
        let known = state.withLockedValue { state in
            name == me.name || state.node.swim.members[name].map { $0.status == .alive } == true
        }
        guard !known else { return }
        _ = await pushPull(with: address)
    }

    // MARK: Push-pull

    /// Runs the initiator's side of a push-pull; true when the exchange completed.
    @discardableResult
    public func pushPull(with address: SocketAddress) async -> Bool {
        let key = "\(address)"
        guard state.withLockedValue({ $0.dialling.insert(key).inserted }) else { return false }
        defer { _ = state.withLockedValue { $0.dialling.remove(key) } }
        do {
            try await withDeadline(Self.streamTimeout) {
                let channel = try await ClientBootstrap(group: self.group)
                    .connectTimeout(.seconds(5))
                    .connect(to: address) { channel in
                        channel.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: channel) }
                    }
                try await channel.executeThenClose { inbound, outbound in
                    var frames = FrameReader(inbound.makeAsyncIterator())
                    try await self.writeLeg(self.state.withLockedValue { $0.node.pushPullRequest() }, outbound)
                    let reply = try await self.readLeg(&frames, from: key, reportAs: Self.shown(address))
                    let finish = self.state.withLockedValue { state in
                        defer { state.noteArrivals(at: self.wallClock.now().seconds) }
                        return state.node.completePushPull(reply, now: self.now)
                    }
                    try await self.writeLeg(finish, outbound)
                }
            }
            pushPulls.increment()
            return true
        } catch {
            pushPullFailures.increment()
            if case MeshError.peerRefusedKey = error { noteForeignKey(Self.shown(address)) }
            logger.debug("gossip push-pull failed", metadata: ["peer.address": "\(address)", "error": "\(error)"])
            return false
        }
    }

    func accept(_ connections: NIOAsyncChannelInboundStream<Stream>) async {
        await withDiscardingTaskGroup { group in
            do {
                for try await connection in connections {
                    group.addTask { await self.answer(connection) }
                }
            } catch {
                logger.debug("gossip accept ended", metadata: ["error": "\(error)"])
            }
        }
    }

    /// The responder's side of a push-pull.
    func answer(_ connection: Stream) async {
        let peer = "\(connection.channel.remoteAddress.map { "\($0)" } ?? "?")"
        // The initiator's port is an ephemeral one: a mismatch is reported by its IP.
        let host = Self.shown(connection.channel.remoteAddress, port: false)
        let slot = PreAuthSlot(mesh: self)
        guard slot.taken else {
            Counter(label: "otamesh_gossip_streams_refused_total").increment()
            try? await connection.executeThenClose { _, _ in }
            return
        }
        defer { slot.release() }
        do {
            try await withDeadline(Self.streamTimeout) {
                try await connection.executeThenClose { inbound, outbound in
                    var frames = FrameReader(inbound.makeAsyncIterator())
                    let request: [WireMessage]
                    do { request = try await self.readLeg(&frames, from: peer, reportAs: host, authenticated: slot.release) } catch MeshError.foreignKey(
                        let who)
                    {
                        await Self.refuseKey(outbound)
                        throw MeshError.foreignKey(who)
                    }
                    try await self.writeLeg(self.state.withLockedValue { $0.node.answerPushPull(request, now: self.now) }, outbound)
                    let finish = try await self.readLeg(&frames, from: peer)
                    self.state.withLockedValue { state in
                        state.node.finishPushPull(finish)
                        state.noteArrivals(at: self.wallClock.now().seconds)
                    }
                }
            }
        } catch {
            logger.debug("gossip push-pull from a peer failed", metadata: ["peer.address": "\(peer)", "error": "\(error)"])
        }
    }

    /// A leg: frames of at most 64 messages, then an empty frame.
    func writeLeg(_ messages: [WireMessage], _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        var chunks = stride(from: 0, to: messages.count, by: WireCodec.maxMessages).map {
            Array(messages[$0..<min($0 + WireCodec.maxMessages, messages.count)])
        }
        chunks.append([])
        for chunk in chunks {
            let sealed = try seal(chunk)
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(sealed.count))
            buffer.writeBytes(sealed)
            try await outbound.write(buffer)
        }
    }

    /// Reads one leg; `authenticated` runs once the first frame opened with a site key.
    func readLeg(
        _ frames: inout FrameReader<NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator>, from peer: String,
        reportAs: String? = nil, authenticated: () -> Void = {}
    ) async throws -> [WireMessage] {
        var messages: [WireMessage] = []
        for _ in 0..<Self.maxFrames {
            let frame = try await frames.next(limit: Self.maxFrame)
            switch open(frame, from: peer, reportAs: reportAs) {
            case .messages(let decoded):
                authenticated()
                if decoded.isEmpty { return messages }
                messages += decoded
            case .foreignKey: throw MeshError.foreignKey(reportAs ?? peer)
            case .dropped: throw MeshError.stream("\(peer): a frame was rejected")
            }
        }
        throw MeshError.stream("\(peer): more than \(Self.maxFrames) frames in one leg")
    }
}
