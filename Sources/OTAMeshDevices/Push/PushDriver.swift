import OTAMeshRollout
import Synchronization

/// What an action of a push machine comes down to for the driver.
enum PushStep {
    case progress(DeviceOutcome.Phase)
    case succeeded(String)
    case failed(PushFailure)
    case wait(until: Int64)
    /// Something only the adapter knows how to do (a request, a socket, a stream): its
    /// ``PushDriver/run(_:events:answersOnly:rounds:accept:perform:progress:)`` `perform`.
    case perform
}

/// A push family's pure state machine, as ``PushDriver`` runs it.
protocol PushMachine: Sendable {
    associatedtype Action: Sendable
    associatedtype Event: Sendable
    static var started: Event { get }
    /// The event a ``PushStep/wait(until:)`` ends with.
    static var tick: Event { get }
    static func step(_ action: Action) -> PushStep
    mutating func handle(_ event: Event, now: Int64) -> [Action]
}

/// Where events reach the driver: the answers to performed actions, a child task's stream,
/// socket handlers. Each carries its link: 0 for events of no socket, else the generation of
/// the socket it came from, so an adapter that reopens sockets can drop an old one's events.
struct PushEvents<Event: Sendable>: Sendable {
    struct Delivery: Sendable {
        var event: Event
        var link: Int
        /// A tick's timer (nil: not a tick); only the latest timer's tick counts.
        var timer: Int?
    }

    let continuation: AsyncStream<Delivery>.Continuation
    let counts: Counts

    /// Events queued and not yet handled, and child tasks running: while both are zero, a
    /// machine whose events only answer its own actions waits for nothing.
    final class Counts: Sendable {
        let queued = Atomic<Int>(0)
        let children = Atomic<Int>(0)
    }

    static func make() -> (AsyncStream<Delivery>, PushEvents) {
        let (stream, continuation) = AsyncStream<Delivery>.makeStream()
        return (stream, PushEvents(continuation: continuation, counts: Counts()))
    }

    func yield(_ event: Event, link: Int = 0) { deliver(Delivery(event: event, link: link, timer: nil)) }

    func deliver(_ delivery: Delivery) {
        counts.queued.add(1, ordering: .sequentiallyConsistent)
        if case .dropped = continuation.yield(delivery) { counts.queued.subtract(1, ordering: .sequentiallyConsistent) }
    }

    func finish() { continuation.finish() }
}

/// The one loop that runs every push machine (ProjectMM, HTTP upload, ArduinoOTA, fetch-url):
/// the machine's progress is handed on, its success or failure ends the push, a `.wait` arms a
/// timer whose tick comes back as an event, and the adapter performs the rest, reporting what
/// happens as events — at once, or later from a child task (`spawn`) or a socket. Timers and
/// child tasks belong to the push: its end or cancellation ends them.
enum PushDriver {
    static let cancelled = PushFailure(.timeout, "push cancelled")
    static let noOutcome = PushFailure(.timeout, "push stopped without an outcome")

    /// A push's loop with `machine`. `answersOnly`: every event answers one of the machine's
    /// own actions (no sockets report on their own), so a step that asks for nothing, with no
    /// timer armed, no child running and no event queued, ends the push without an outcome
    /// rather than waiting forever. `rounds` bounds the events handled; `accept` says whether
    /// an event's link is still current.
    static func run<Machine: PushMachine>(
        _ machine: Machine, events stream: AsyncStream<PushEvents<Machine.Event>.Delivery>, _ events: PushEvents<Machine.Event>,
        answersOnly: Bool, rounds: Int = .max, accept: (Int) -> Bool = { _ in true },
        perform: (Machine.Action, _ spawn: (@escaping @Sendable () async -> Void) -> Void) async -> Void,
        progress: (DeviceOutcome.Phase) -> Void
    ) async -> Result<String, PushFailure> {
        var machine = machine
        let counts = events.counts
        return await withDiscardingTaskGroup { group in
            defer {
                group.cancelAll()
                events.finish()
            }
            var timer = 0
            var armed = false
            var pending = machine.handle(Machine.started, now: PushHTTPShell.milliseconds())
            var iterator = stream.makeAsyncIterator()
            for _ in 0..<rounds {
                for action in pending {
                    switch Machine.step(action) {
                    case .progress(let phase): progress(phase)
                    case .succeeded(let version): return .success(version)
                    case .failed(let failure): return .failure(failure)
                    case .wait(let until):
                        timer += 1
                        armed = true
                        group.addTask { [timer] in
                            guard await PushHTTPShell.wait(until: until) else { return }
                            events.deliver(.init(event: Machine.tick, link: 0, timer: timer))
                        }
                    case .perform:
                        await perform(action) { job in
                            counts.children.add(1, ordering: .sequentiallyConsistent)
                            group.addTask {
                                await job()
                                counts.children.subtract(1, ordering: .sequentiallyConsistent)
                            }
                        }
                    }
                }
                if Task.isCancelled { return .failure(cancelled) }
                if answersOnly, !armed, counts.children.load(ordering: .sequentiallyConsistent) == 0,
                    counts.queued.load(ordering: .sequentiallyConsistent) == 0
                {
                    return .failure(noOutcome)
                }
                guard let delivery = await iterator.next() else { return .failure(cancelled) }
                counts.queued.subtract(1, ordering: .sequentiallyConsistent)
                // Events of a link closed since (a retry's old socket), and ticks of a timer
                // replaced since, are dropped.
                guard accept(delivery.link), delivery.timer == nil || delivery.timer == timer else {
                    pending = []
                    continue
                }
                if delivery.timer != nil { armed = false }
                pending = machine.handle(delivery.event, now: PushHTTPShell.milliseconds())
            }
            return .failure(PushHTTPShell.tooManyRounds(rounds))
        }
    }
}
