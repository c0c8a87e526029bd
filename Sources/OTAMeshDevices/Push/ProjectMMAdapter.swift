import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OTAMeshRollout

/// Pushes to projectMM devices over HTTP: the shell that runs ``ProjectMMPush``. Requests go to
/// `http://HOST:PORT` of the target (through its HTTP proxy when it names one).
public struct ProjectMMAdapter: PushAdapter {
    public let family = "projectmm"
    public var timing: ProjectMMPush.Timing
    /// Per request (connect + answer).
    public var requestTimeout: Duration

    public init(timing: ProjectMMPush.Timing = .init(), requestTimeout: Duration = .seconds(5)) {
        self.timing = timing
        self.requestTimeout = requestTimeout
    }

    /// Monotonic milliseconds (the state machine's clock).
    static func milliseconds() -> Int64 { Int64(ProcessInfo.processInfo.systemUptime * 1000) }

    public func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .init(requestTimeout), read: .init(requestTimeout))
        configuration.redirectConfiguration = .disallow
        if let proxy = device.proxy, let url = URL(string: proxy), let host = url.host {
            configuration.proxy = .server(host: host, port: url.port ?? 80)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let outcome = await run(image, to: device, client: client, progress: progress)
        try? await client.shutdown()
        return try outcome.get()
    }

    private func run(_ image: PushImage, to device: PushTarget, client: HTTPClient,
                     progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async -> Result<String, PushFailure> {
        let host = device.host.contains(":") ? "[\(device.host)]" : device.host
        let base = "http://\(host):\(device.port)"
        var machine = ProjectMMPush(image: image, target: device, timing: timing, now: Self.milliseconds(), random: Double.random(in: 0..<1))
        var actions = machine.handle(.started, now: Self.milliseconds())
        // Bounded: every round is one poll interval or one request at least.
        let rounds = Int(timing.deadline / max(1, min(timing.pollInterval, 100))) + 1000
        for _ in 0..<rounds {
            var next: ProjectMMPush.Event?
            for action in actions {
                switch action {
                case .progress(let phase):
                    progress(phase)
                case .succeeded(let version):
                    return .success(version)
                case .failed(let failure):
                    return .failure(failure)
                case .fetchStatus:
                    next = await fetchStatus(client, base: base)
                case .post(let body):
                    next = await post(client, base: base, body: body)
                case .wait(let until):
                    let delay = until - Self.milliseconds()
                    if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
                    if Task.isCancelled { return .failure(PushFailure(.timeout, "push cancelled")) }
                    next = .tick
                }
            }
            guard let next else { return .failure(PushFailure(.timeout, "push stopped without an outcome")) }
            actions = machine.handle(next, now: Self.milliseconds())
        }
        return .failure(PushFailure(.timeout, "push did not finish within \(rounds) steps"))
    }

    private func fetchStatus(_ client: HTTPClient, base: String) async -> ProjectMMPush.Event {
        var request = HTTPClientRequest(url: base + "/api/state")
        request.headers.add(name: "Accept", value: "application/json")
        do {
            let response = try await client.execute(request, timeout: .init(requestTimeout))
            let body = try await response.body.collect(upTo: 4 << 20)
            guard response.status == .ok else { return .statusFailed("GET /api/state answered \(response.status.code)") }
            do throws(ProjectMMStatus.Unreadable) {
                return .status(try ProjectMMStatus.parse(Array(body.readableBytesView)))
            } catch {
                return .statusFailed(error.reason)
            }
        } catch {
            return .statusFailed(Self.describe(error))
        }
    }

    private func post(_ client: HTTPClient, base: String, body: String) async -> ProjectMMPush.Event {
        var request = HTTPClientRequest(url: base + "/api/firmware/url")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .init(requestTimeout))
            let answer = try await response.body.collect(upTo: 64 << 10)
            return .posted(status: Int(response.status.code), body: String(buffer: answer))
        } catch {
            return .postFailed(Self.describe(error))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }
}
