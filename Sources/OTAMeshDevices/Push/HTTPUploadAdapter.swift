import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OTAMeshCommon
import OTAMeshRollout
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Pushes to devices with an HTTP upload form (ESP8266HTTPUpdateServer and its ESP32 ports,
/// family `http-upload`): the shell that runs ``HTTPUploadPush``. The image is streamed from its
/// blob file in a multipart/form-data body (field `firmware`), never held in memory whole.
///
/// Confirmation: the upload server itself reports no version, so the adapter polls
/// `GET versionPath` on the same host and port (default `/version`) and reads the version from
/// its answer: a JSON object's `version` string, or the first line of a plain-text body.
///
/// Per device, the registry may override: credentials (``PushTarget/credentials``), and the
/// options `dialect` (`update-server`, the default, or `elegantota3`: ElegantOTA 3's
/// `GET /ota/start?mode=fr&hash=MD5` before `POST /ota/upload`), `upload_path` and `version_path`.
public struct HTTPUploadAdapter: PushAdapter, CustomStringConvertible {
    public let family = DeviceFamily.httpUpload
    public var timing: HTTPUploadPush.Timing
    /// Per request (connect + answer) of the version probe; the upload gets ``uploadTimeout``.
    public var requestTimeout: Duration
    public var uploadTimeout: Duration
    /// The upload form's path (`/update` on ESP8266HTTPUpdateServer).
    public var uploadPath: String
    /// The path that answers the running version (see the type's comment).
    public var versionPath: String
    /// Basic-auth user and password, when the device's form has them (a device's own, from the
    /// registry, come first).
    public var credentials: PushCredentials?

    public init(
        timing: HTTPUploadPush.Timing = .init(), requestTimeout: Duration = .seconds(5), uploadTimeout: Duration = .seconds(300),
        uploadPath: String = "/update", versionPath: String = "/version", credentials: PushCredentials? = nil
    ) {
        self.timing = timing
        self.requestTimeout = requestTimeout
        self.uploadTimeout = uploadTimeout
        self.uploadPath = uploadPath
        self.versionPath = versionPath
        self.credentials = credentials
    }

    public var description: String {
        "HTTPUploadAdapter(POST \(uploadPath), version at \(versionPath), \(credentials == nil ? "no credentials" : "credentials set"))"
    }

    /// The version in a confirmation answer: a JSON object's `version` (or `value`, as ESPHome's
    /// web server answers a text sensor: `{"id":"text_sensor-…","state":"1.4.0","value":"1.4.0"}`),
    /// else the first line of the text (at most 64 characters); nil when there is none.
    public static func version(fromBody body: String) -> String? {
        let text = body.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") {
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            return (object?["version"] as? String ?? object?["value"] as? String).flatMap { $0.isEmpty || $0.count > 64 ? nil : $0 }
        }
        guard let line = text.split(whereSeparator: \.isNewline).first.map(String.init), !line.isEmpty, line.count <= 64,
            !line.contains("<")
        else { return nil }
        return line
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
        let credentials = device.credentials ?? credentials
        var dialect = HTTPUploadPush.Dialect.updateServer
        if let named = device.options["dialect"] {
            guard let known = HTTPUploadPush.Dialect(rawValue: named) else {
                let names = HTTPUploadPush.Dialect.allCases.map(\.rawValue).joined(separator: " or ")
                return .failure(PushFailure(.refused, "device \(device.id): unknown http-upload dialect \(named) (\(names))"))
            }
            dialect = known
        }
        let uploadPath = device.options["upload_path"] ?? (dialect == .updateServer ? uploadPath : dialect.uploadPath)
        let versionPath = device.options["version_path"] ?? versionPath
        let machine = HTTPUploadPush(
            image: image, target: device, authenticates: credentials != nil, dialect: dialect, uploadPath: uploadPath,
            timing: timing, now: PushHTTPShell.milliseconds(), random: Double.random(in: 0..<1))
        let md5 = Mutex<Result<String, MultipartFileBody.Unreadable>?>(nil)
        let (stream, events) = PushEvents<HTTPUploadPush.Event>.make()
        return await PushDriver.run(
            machine, events: stream, events, answersOnly: true, rounds: PushHTTPShell.rounds(deadline: timing.deadline, pollInterval: timing.pollInterval)
        ) { action, spawn in
            switch action {
            case .upload:
                // The upload runs as a child of the push, reporting its events as they happen.
                spawn { await upload(image, client: client, url: base + uploadPath, credentials: credentials, events: events) }
            case .start:
                // The image's MD5, read once (a retried start reuses it).
                let hash = md5.withLock { known in
                    if known == nil {
                        known =
                            switch ArduinoOTAAdapter.facts(of: image.file) {
                            case .imageRead(let facts): .success(facts.md5)
                            case .imageUnreadable(let reason): .failure(MultipartFileBody.Unreadable(reason: reason))
                            default: .failure(MultipartFileBody.Unreadable(reason: "cannot read \(image.file)"))
                            }
                    }
                    return known!
                }
                switch hash {
                case .success(let hash): events.yield(await start(hash: hash, client: client, base: base, credentials: credentials))
                case .failure(let unreadable): events.yield(.imageUnreadable(unreadable.reason))
                }
            case .fetchVersion:
                events.yield(await fetchVersion(client, base: base, path: versionPath))
            default:
                break
            }
        } progress: {
            progress($0)
        }
    }

    /// Runs the upload, reporting its events (`sending`, `sent`, then the answer or the failure)
    /// in order.
    private func upload(
        _ image: PushImage, client: HTTPClient, url: String, credentials: PushCredentials?, events continuation: PushEvents<HTTPUploadPush.Event>
    ) async {
        let boundary = "otamesh-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let name = image.path.split(separator: "/").last.map(String.init) ?? "firmware.bin"
        let body = MultipartFileBody(file: image.file, fileName: name, boundary: boundary, events: continuation)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        if let credentials { request.headers.add(name: "Authorization", value: credentials.authorization) }
        do {
            let length = try body.length()
            request.body = .stream(body, length: .known(length))
            let response = try await client.execute(request, timeout: .init(uploadTimeout))
            let answer = try await response.body.collect(upTo: 64 << 10)
            continuation.yield(.uploaded(status: Int(response.status.code), body: String(buffer: answer)))
        } catch let error as MultipartFileBody.Unreadable {
            continuation.yield(.imageUnreadable(error.reason))
        } catch {
            continuation.yield(.uploadFailed(PushHTTPShell.describe(error), sentBytes: body.sent))
        }
    }

    /// ElegantOTA 3's `GET /ota/start?mode=fr&hash=MD5`: the device begins the update and checks
    /// the image against the MD5 when it ends.
    private func start(hash: String, client: HTTPClient, base: String, credentials: PushCredentials?) async -> HTTPUploadPush.Event {
        var request = HTTPClientRequest(url: base + "/ota/start?mode=fr&hash=\(hash)")
        if let credentials { request.headers.add(name: "Authorization", value: credentials.authorization) }
        switch await PushHTTPShell.exchange(client, request, timeout: requestTimeout) {
        case .success(let answer): return .startAnswered(status: answer.status, body: answer.body)
        case .failure(let unanswered): return .startFailed(unanswered.reason)
        }
    }

    private func fetchVersion(_ client: HTTPClient, base: String, path versionPath: String) async -> HTTPUploadPush.Event {
        let request = HTTPClientRequest(url: base + versionPath)
        do {
            let response = try await client.execute(request, timeout: .init(requestTimeout))
            let body = try await response.body.collect(upTo: 64 << 10)
            guard response.status == .ok else { return .versionFailed("GET \(versionPath) answered \(response.status.code)") }
            guard let version = Self.version(fromBody: String(buffer: body)) else { return .versionFailed("GET \(versionPath) named no version") }
            return .version(version)
        } catch {
            return .versionFailed(PushHTTPShell.describe(error))
        }
    }
}

/// The multipart/form-data body of an upload, read from the file in 64 KiB chunks as the client
/// sends: the part head, the file, the closing boundary. Tells the machine when the file's
/// bytes start and when all of them went out.
struct MultipartFileBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    struct Unreadable: Error { var reason: String }

    let file: String
    let head: [UInt8]
    let tail: [UInt8]
    let events: PushEvents<HTTPUploadPush.Event>
    private let counter = Counter()

    final class Counter: Sendable {
        let sent = Atomic<Int64>(0)
    }

    init(file: String, fileName: String, boundary: String, events: PushEvents<HTTPUploadPush.Event>) {
        self.file = file
        let safeName = fileName.filter { $0 != "\"" && $0 != "\r" && $0 != "\n" }
        head = Array(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"firmware\"; filename=\"\(safeName)\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .utf8)
        tail = Array("\r\n--\(boundary)--\r\n".utf8)
        self.events = events
    }

    /// Body bytes handed to the client so far.
    var sent: Int64 { counter.sent.load(ordering: .relaxed) }

    func length() throws(Unreadable) -> Int64 {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file), let size = attributes[.size] as? NSNumber else {
            throw Unreadable(reason: "image file \(file) cannot be read")
        }
        return Int64(head.count + tail.count) + size.int64Value
    }

    func makeAsyncIterator() -> Iterator { Iterator(body: self) }

    /// The open file; closed when the iterator goes away, also mid-file (a reset upload).
    final class OpenFile: @unchecked Sendable {
        var descriptor: Int32 = -1
        deinit { if descriptor >= 0 { close(descriptor) } }
    }

    struct Iterator: AsyncIteratorProtocol {
        let body: MultipartFileBody
        var stage = 0
        let file = OpenFile()

        mutating func next() async throws -> ByteBuffer? {
            switch stage {
            case 0:
                file.descriptor = open(body.file, O_RDONLY)
                guard file.descriptor >= 0 else { throw Unreadable(reason: "cannot open \(body.file)") }
                stage = 1
                body.counter.sent.add(Int64(body.head.count), ordering: .relaxed)
                body.events.yield(.sending)
                return ByteBuffer(bytes: body.head)
            case 1:
                var chunk = [UInt8](repeating: 0, count: 64 << 10)
                let count = chunk.withUnsafeMutableBytes { read(file.descriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    body.counter.sent.add(Int64(count), ordering: .relaxed)
                    return ByteBuffer(bytes: chunk[0..<count])
                }
                close(file.descriptor)
                file.descriptor = -1
                guard count == 0 else { throw Unreadable(reason: "read error in \(body.file)") }
                stage = 2
                body.counter.sent.add(Int64(body.tail.count), ordering: .relaxed)
                body.events.yield(.sent)
                return ByteBuffer(bytes: body.tail)
            default:
                return nil
            }
        }
    }
}

extension HTTPUploadPush: PushMachine {
    static var started: Event { .started }
    static var tick: Event { .tick }
    static func step(_ action: Action) -> PushStep {
        switch action {
        case .progress(let phase): .progress(phase)
        case .succeeded(let version): .succeeded(version)
        case .failed(let failure): .failed(failure)
        case .wait(let until): .wait(until: until)
        case .start, .upload, .fetchVersion: .perform
        }
    }
}
