import AsyncHTTPClient
import Foundation
import NIOCore
import OTAMeshRollout

/// What the push adapters share around ``PushDriver``: the HTTP client (timeouts, no redirects,
/// the target's proxy), the device's base URL, the monotonic clock the machines run on, waiting
/// out a `.wait` action, the bound on a push's steps, and how a client error is described.
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
}
