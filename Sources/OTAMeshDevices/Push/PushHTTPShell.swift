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

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }
}
