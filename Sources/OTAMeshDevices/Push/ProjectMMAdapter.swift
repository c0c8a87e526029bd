import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OTAMeshCommon
import OTAMeshRollout

/// Pushes to projectMM devices over HTTP: the shell that runs ``ProjectMMPush``. Requests go to
/// `http://HOST:PORT` of the target (through its HTTP proxy when it names one).
public struct ProjectMMAdapter: PushAdapter {
    public let family = DeviceFamily.projectMM
    public var timing: ProjectMMPush.Timing
    /// Per request (connect + answer).
    public var requestTimeout: Duration

    public init(timing: ProjectMMPush.Timing = .init(), requestTimeout: Duration = .seconds(5)) {
        self.timing = timing
        self.requestTimeout = requestTimeout
    }

    public func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String
    {
        try await PushHTTPShell.withClient(for: device, requestTimeout: requestTimeout) { client in
            await run(image, to: device, client: client, progress: progress)
        }
    }

    private func run(
        _ image: PushImage, to device: PushTarget, client: HTTPClient,
        progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void
    ) async -> Result<String, PushFailure> {
        let base = PushHTTPShell.base(of: device)
        let machine = ProjectMMPush(image: image, target: device, timing: timing, now: PushHTTPShell.milliseconds(), random: Double.random(in: 0..<1))
        let (stream, events) = PushEvents<ProjectMMPush.Event>.make()
        return await PushDriver.run(
            machine, events: stream, events, answersOnly: true, rounds: PushHTTPShell.rounds(deadline: timing.deadline, pollInterval: timing.pollInterval)
        ) { action, _ in
            if case .post(let body) = action {
                events.yield(await post(client, base: base, body: body))
            } else {
                events.yield(await fetchStatus(client, base: base))
            }
        } progress: {
            progress($0)
        }
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
            return .statusFailed(PushHTTPShell.describe(error))
        }
    }

    private func post(_ client: HTTPClient, base: String, body: String) async -> ProjectMMPush.Event {
        var request = HTTPClientRequest(url: base + "/api/firmware/url")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        switch await PushHTTPShell.exchange(client, request, timeout: requestTimeout) {
        case .success(let answer): return .posted(status: answer.status, body: answer.body)
        case .failure(let unanswered): return .postFailed(unanswered.reason)
        }
    }
}

extension ProjectMMPush: PushMachine {
    static var started: Event { .started }
    static var tick: Event { .tick }
    static func step(_ action: Action) -> PushStep {
        switch action {
        case .progress(let phase): .progress(phase)
        case .succeeded(let version): .succeeded(version)
        case .failed(let failure): .failed(failure)
        case .wait(let until): .wait(until: until)
        case .fetchStatus, .post: .perform
        }
    }
}
