import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// The NIO shell of a listener's ``ConnectionBudget``: each accepted connection asks it on
/// activation (``ConnectionGateHandler``); the gate closes the connections the budget sheds and
/// refuses a connection by closing it at once, before it costs more than its descriptor.
public final class ConnectionGate: Sendable {
    public let listener: String
    private struct State {
        var budget: ConnectionBudget<ObjectIdentifier>
        var channels: [ObjectIdentifier: any Channel] = [:]
    }
    private let state: NIOLockedValueBox<State>
    private let shed: Counter
    private let refused: Counter
    private let open: Gauge
    private let logger: Logger

    public init(listener: String, limits: ConnectionCap, logger: Logger) {
        self.listener = listener
        self.logger = logger
        state = NIOLockedValueBox(State(budget: ConnectionBudget(limits: limits)))
        shed = Counter(label: "otamesh_connections_shed_total", dimensions: [("listener", listener)])
        refused = Counter(label: "otamesh_connections_refused_total", dimensions: [("listener", listener)])
        open = Gauge(label: "otamesh_connections", dimensions: [("listener", listener)])
    }

    /// A new connection: admitted (closing what it sheds) or closed. Returns whether admitted.
    @discardableResult
    func admit(_ channel: any Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let (admission, victims, held): (ConnectionBudget<ObjectIdentifier>.Admission, [any Channel], Int) = state.withLockedValue { state in
            let admission = state.budget.admit(key, address: address)
            var victims: [any Channel] = []
            if case .admitted(let shed) = admission {
                state.channels[key] = channel
                for victim in shed { if let gone = state.channels.removeValue(forKey: victim) { victims.append(gone) } }
            }
            return (admission, victims, state.budget.count)
        }
        open.record(held)
        for victim in victims { victim.close(promise: nil) }
        if !victims.isEmpty { shed.increment(by: victims.count) }
        switch admission {
        case .admitted: return true
        case .refused(let why):
            refused.increment()
            // Rate of these is the attacker's: debug only, the counter tells the admin.
            logger.debug("connection refused", metadata: ["connection.listener": "\(listener)", "connection.reason": "\(why)"])
            channel.close(promise: nil)
            return false
        }
    }

    /// Closes up to `count` idle connections to free descriptors; returns how many.
    @discardableResult
    func shedIdle(_ count: Int) -> Int {
        let victims: [any Channel] = state.withLockedValue { state in
            state.budget.shedIdle(count).compactMap { state.channels.removeValue(forKey: $0) }
        }
        for victim in victims { victim.close(promise: nil) }
        if !victims.isEmpty { shed.increment(by: victims.count) }
        return victims.count
    }

    func closed(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let held = state.withLockedValue { state in
            state.channels.removeValue(forKey: key)
            state.budget.remove(key)
            return state.budget.count
        }
        open.record(held)
    }

    /// A response is in flight on `channel` (never shed) or finished (idle again).
    func setBusy(_ channel: any Channel, _ busy: Bool) {
        let key = ObjectIdentifier(channel)
        state.withLockedValue { $0.budget.setBusy(key, busy) }
    }
}

/// First handler of an accepted connection: asks the gate on activation, tells it when the
/// connection closes. Passes everything through.
final class ConnectionGateHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let gate: ConnectionGate
    private var admitted = false

    init(gate: ConnectionGate) {
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admitOnce(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admitOnce(context)
        context.fireChannelActive()
    }

    private func admitOnce(_ context: ChannelHandlerContext) {
        guard !admitted else { return }
        admitted = gate.admit(context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection is closing: what it sent is dropped.
        guard admitted else { return }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if admitted { gate.closed(context.channel) }
        context.fireChannelInactive()
    }
}
