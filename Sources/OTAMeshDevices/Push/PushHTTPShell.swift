import AsyncHTTPClient
import Foundation
import NIOCore
import OTAMeshRollout

/// The HTTP client shell the push adapters share around their state machines: the client
/// (timeouts, no redirects, the target's proxy), the device's base URL, the monotonic clock the
/// machines run on, waiting out a `.wait` action, and how a client error is described.
enum PushHTTPShell {
    /// Monotonic milliseconds (the state machines' clock).
    static func milliseconds() -> Int64 { Int64(ProcessInfo.processInfo.systemUptime * 1000) }

    /// `http://HOST:PORT` of the target (IPv6 hosts bracketed).
    static func base(of device: PushTarget) -> String {
        let host = device.host.contains(":") ? "[\(device.host)]" : device.host
        return "http://\(host):\(device.port)"
    }

    /// Runs `body` with a client for `device` (through its HTTP proxy when it names one) and shuts
    /// the client down afterwards.
    static func withClient(
        for device: PushTarget, requestTimeout: Duration,
        _ body: (HTTPClient) async -> Result<String, PushFailure>
    ) async throws(PushFailure) -> String {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .init(requestTimeout), read: .init(requestTimeout))
        configuration.redirectConfiguration = .disallow
        if let proxy = device.proxy, let url = URL(string: proxy), let host = url.host {
            configuration.proxy = .server(host: host, port: url.port ?? 80)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let outcome = await body(client)
        try? await client.shutdown()
        return try outcome.get()
    }

    /// Sleeps until `until` (state-machine milliseconds); false when the push was cancelled.
    static func wait(until: Int64) async -> Bool {
        let delay = until - milliseconds()
        if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
        return !Task.isCancelled
    }

    static let cancelled = PushFailure(.timeout, "push cancelled")
    static let noOutcome = PushFailure(.timeout, "push stopped without an outcome")

    /// Bounded drive loops: every round is one poll interval or one request at least.
    static func rounds(deadline: Int64, pollInterval: Int64) -> Int {
        Int(deadline / max(1, min(pollInterval, 100))) + 1000
    }

    static func tooManyRounds(_ rounds: Int) -> PushFailure {
        PushFailure(.timeout, "push did not finish within \(rounds) steps")
    }

    /// One request and its whole answer (up to 64 KiB): the status and the body as text, or why
    /// there was none (connect refused, reset, timeout).
    static func exchange(_ client: HTTPClient, _ request: HTTPClientRequest, timeout: Duration) async -> Result<(status: Int, body: String), Unanswered> {
        do {
            let response = try await client.execute(request, timeout: .init(timeout))
            let body = try await response.body.collect(upTo: 64 << 10)
            return .success((Int(response.status.code), String(buffer: body)))
        } catch {
            return .failure(Unanswered(reason: describe(error)))
        }
    }

    struct Unanswered: Error {
        var reason: String
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }

    /// What one action of a push state machine asks of the drive loop.
    enum Step {
        case progress(DeviceOutcome.Phase)
        case succeeded(String)
        case failed(PushFailure)
        case wait(until: Int64)
        /// A request only the adapter knows how to make (``drive(_:timing:step:tick:handle:perform:progress:)``'s `perform`).
        case perform
    }

    /// The loop the HTTP adapters run around their state machines: progress is handed on, the
    /// machine's success or failure ends it, `.wait` is waited out (then `tick`), and anything
    /// else is performed by the adapter, whose answer is the machine's next event; bounded by
    /// ``rounds(deadline:pollInterval:)``.
    static func drive<Action, Event>(
        _ first: [Action], timing: PushTiming, step: (Action) -> Step, tick: Event,
        handle: (Event) -> [Action], perform: (Action) async -> Event,
        progress: (DeviceOutcome.Phase) -> Void
    ) async -> Result<String, PushFailure> {
        var actions = first
        let rounds = rounds(deadline: timing.deadline, pollInterval: timing.pollInterval)
        for _ in 0..<rounds {
            var next: Event?
            for action in actions {
                switch step(action) {
                case .progress(let phase): progress(phase)
                case .succeeded(let version): return .success(version)
                case .failed(let failure): return .failure(failure)
                case .wait(let until):
                    guard await wait(until: until) else { return .failure(cancelled) }
                    next = tick
                case .perform: next = await perform(action)
                }
            }
            guard let next else { return .failure(noOutcome) }
            actions = handle(next)
        }
        return .failure(tooManyRounds(rounds))
    }
}
