import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OTAMeshCommon
import OTAMeshRollout

/// Pushes to devices that only take "fetch this URL" commands (family `fetch-url`): the shell
/// that runs ``FetchURLPush``. The command is configured per device through the registry's
/// options (``FetchURLRequest``: `method`, `path`, `body`, `content_type`, `accept`,
/// `version_path`, `version_port`, `reboot_grace`); the device's credentials, when it has any,
/// go as HTTP basic auth on the command and on the version probe, and its HTTP proxy is used.
///
/// Confirmation: `GET version_path` on the device (on `version_port` when set): a JSON object's
/// `version` (and `variant` or `firmware`, when present), or the first line of a plain-text body.
public struct FetchURLAdapter: PushAdapter, CustomStringConvertible {
    public let family = DeviceFamily.fetchURL
    public var timing: FetchURLPush.Timing
    /// Per request (connect + answer).
    public var requestTimeout: Duration

    public init(timing: FetchURLPush.Timing = .init(), requestTimeout: Duration = .seconds(5)) {
        self.timing = timing
        self.requestTimeout = requestTimeout
    }

    public var description: String { "FetchURLAdapter(request timeout \(requestTimeout))" }

    /// What a version endpoint's answer says: a JSON object's `version` (with `variant` or
    /// `firmware`), else the first line of the text; nil when there is no version.
    public static func reported(fromBody body: String) -> FetchURLPush.Reported? {
        let text = body.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                let version = object["version"] as? String, !version.isEmpty
            else { return nil }
            return FetchURLPush.Reported(version: version, variant: (object["variant"] as? String) ?? (object["firmware"] as? String))
        }
        return HTTPUploadAdapter.version(fromBody: text).map { FetchURLPush.Reported(version: $0) }
    }

    public func push(_ image: PushImage, to device: PushTarget, progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void) async throws(PushFailure) -> String
    {
        let request: FetchURLRequest
        do { request = try FetchURLRequest(options: device.options) } catch {
            throw PushFailure(.refused, "device \(device.id): \(error)")
        }
        return try await PushHTTPShell.withClient(for: device, requestTimeout: requestTimeout) { client in
            await run(image, to: device, request: request, client: client, progress: progress)
        }
    }

    private func run(
        _ image: PushImage, to device: PushTarget, request: FetchURLRequest, client: HTTPClient,
        progress: @escaping @Sendable (DeviceOutcome.Phase) -> Void
    ) async -> Result<String, PushFailure> {
        let base = PushHTTPShell.base(of: device)
        var versionTarget = device
        if let port = request.versionPort { versionTarget.port = port }
        let versionURL = PushHTTPShell.base(of: versionTarget) + request.versionPath
        let authorization = device.credentials?.authorization
        let machine = FetchURLPush(
            image: image, target: device, request: request, authenticates: authorization != nil, timing: timing,
            now: PushHTTPShell.milliseconds(), random: Double.random(in: 0..<1))
        let (stream, events) = PushEvents<FetchURLPush.Event>.make()
        return await PushDriver.run(
            machine, events: stream, events, answersOnly: true, rounds: PushHTTPShell.rounds(deadline: timing.deadline, pollInterval: timing.pollInterval)
        ) { action, _ in
            if case .send(let command) = action {
                events.yield(await send(command, client: client, base: base, authorization: authorization))
            } else {
                events.yield(await fetchVersion(client, url: versionURL, path: request.versionPath, authorization: authorization))
            }
        } progress: {
            progress($0)
        }
    }

    private func send(_ command: FetchURLPush.Command, client: HTTPClient, base: String, authorization: String?) async -> FetchURLPush.Event {
        var request = HTTPClientRequest(url: base + command.path)
        request.method = HTTPMethod(rawValue: command.method)
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        if command.method != "GET" {
            request.headers.add(name: "Content-Type", value: command.contentType)
            request.body = .bytes(ByteBuffer(string: command.body))
        }
        switch await PushHTTPShell.exchange(client, request, timeout: requestTimeout) {
        case .success(let answer): return .answered(status: answer.status, body: answer.body)
        case .failure(let unanswered): return .sendFailed(unanswered.reason)
        }
    }

    private func fetchVersion(_ client: HTTPClient, url: String, path: String, authorization: String?) async -> FetchURLPush.Event {
        var request = HTTPClientRequest(url: url)
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        do {
            let response = try await client.execute(request, timeout: .init(requestTimeout))
            let body = try await response.body.collect(upTo: 64 << 10)
            guard response.status == .ok else { return .versionFailed("GET \(path) answered \(response.status.code)") }
            guard let reported = Self.reported(fromBody: String(buffer: body)) else { return .versionFailed("GET \(path) named no version") }
            return .version(reported)
        } catch {
            return .versionFailed(PushHTTPShell.describe(error))
        }
    }
}

extension FetchURLPush: PushMachine {
    static var started: Event { .started }
    static var tick: Event { .tick }
    static func step(_ action: Action) -> PushStep {
        switch action {
        case .progress(let phase): .progress(phase)
        case .succeeded(let version): .succeeded(version)
        case .failed(let failure): .failed(failure)
        case .wait(let until): .wait(until: until)
        case .send, .fetchVersion: .perform
        }
    }
}
