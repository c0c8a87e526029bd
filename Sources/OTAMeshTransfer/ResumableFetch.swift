import AsyncHTTPClient
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import OTAMeshCommon
import OTAMeshStore

#if canImport(Glibc)
import Glibc
#endif

/// Why a fetch finally failed: the last failure and the policy's reason.
public struct FetchError: Error, Sendable, CustomStringConvertible {
    public let url: String
    public let failure: TransferFailure
    public let reason: String
    /// Requests made in all.
    public let requests: Int

    public var description: String { "\(url): \(reason)" }
}

/// What a completed fetch did.
public struct FetchReport: Sendable, Equatable {
    public var record: BlobRecord
    /// True when the store already held the content (no request made).
    public var alreadyPresent = false
    public var requests = 0
    /// Body bytes received over all attempts (≥ the size when bytes were lost to drops).
    public var bytesReceived: Int64 = 0
    /// Bytes taken over from a partial an earlier run left behind.
    public var resumedFrom: Int64 = 0
    /// Times the server's representation changed and the download started over.
    public var restarts = 0
}

/// Downloads one blob of known SHA-256 and length into the store, resuming interrupted
/// transfers: `Range: bytes=OFFSET-` with `If-Range: VALIDATOR`, checked against
/// Content-Range; a changed validator restarts from zero; every byte goes through the store's
/// ingest, so nothing is committed until the whole blob matches the signed hash.
///
/// Failures follow the retry-timeout policy (``RetryPolicy``): network-class failures resume
/// after a backoff until the retry timeout or the reconnect limit; anything else fails at once.
public struct ResumableFetch: Sendable {
    public var policy: RetryPolicy
    /// Minimum rate over `stallWindow` seconds; slower counts as a network timeout.
    public var minBytesPerSecond: Double
    public var stallWindow: Double
    public var connectTimeout: Double
    public var proxies: ProxySettings
    public var logger: Logger
    /// Monotonic seconds.
    public var now: @Sendable () -> Double
    /// Uniform in [0, 1).
    public var random: @Sendable () -> Double
    public var sleep: @Sendable (Double) async throws -> Void

    public init(
        policy: RetryPolicy = RetryPolicy(), minBytesPerSecond: Double = 100, stallWindow: Double = 60,
        connectTimeout: Double = 10, proxies: ProxySettings = ProxySettings(), logger: Logger = Logger(label: "otamesh.transfer"),
        now: @escaping @Sendable () -> Double = ResumableFetch.monotonic,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        sleep: @escaping @Sendable (Double) async throws -> Void = { try await Task.sleep(for: .milliseconds(Int64($0 * 1000))) }
    ) {
        self.policy = policy
        self.minBytesPerSecond = minBytesPerSecond
        self.stallWindow = stallWindow
        self.connectTimeout = connectTimeout
        self.proxies = proxies
        self.logger = logger
        self.now = now
        self.random = random
        self.sleep = sleep
    }

    public static func monotonic() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static let attempts = Counter(label: "otamesh_transfer_requests_total")
    static let retries = Counter(label: "otamesh_transfer_retries_total")
    static let failures = Counter(label: "otamesh_transfer_failures_total")
    static let received = Counter(label: "otamesh_transfer_bytes_total")

    /// Fetches `url` into `store` as `expected` (digest and size both required).
    public func fetch(_ url: String, expected: ExpectedContent, into store: BlobStore) async throws -> FetchReport {
        guard let size = expected.size else {
            throw FetchError(url: url, failure: .integrity("no signed length"), reason: "refusing a download without a signed length", requests: 0)
        }
        let ingest: Ingest
        switch try store.beginIngest(expected: expected) {
        case .present(let record): return FetchReport(record: record, alreadyPresent: true)
        case .receive(let started): ingest = started
        }
        let client = makeClient(for: url)
        do {
            let report = try await fetch(url, size: size, digest: expected.digest, ingest: ingest, client: client)
            try? await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    func fetch(_ url: String, size: Int64, digest: BlobDigest, ingest: Ingest, client: HTTPClient) async throws -> FetchReport {
        var report = FetchReport(record: BlobRecord(sha256: digest.hex, size: size, addedAt: 0, lastAccessAt: 0))
        report.resumedFrom = ingest.offset
        let started = now()
        var attempt = 0
        while true {
            report.requests += 1
            Self.attempts.increment()
            let failure: TransferFailure
            do {
                try await attemptOnce(url, size: size, ingest: ingest, client: client, report: &report)
                if ingest.offset == size {
                    do {
                        report.record = try ingest.commit()
                    } catch {
                        throw FetchError(url: url, failure: .integrity("\(error)"), reason: "\(error) (not retryable)", requests: report.requests)
                    }
                    return report
                }
                failure = .network("connection closed at byte \(ingest.offset) of \(size)")
            } catch let final as FetchError {
                throw final
            } catch let failed as AttemptFailure {
                failure = failed.failure
            } catch let error as StoreError {
                ingest.abandon()
                Self.failures.increment()
                throw FetchError(url: url, failure: .local("\(error)"), reason: "\(error) (not retryable)", requests: report.requests)
            } catch {
                failure = .network(String(describing: error))
            }
            attempt += 1
            switch policy.decide(failure, attempt: attempt, elapsed: now() - started, random: random()) {
            case .retry(let wait):
                Self.retries.increment()
                logger.info(
                    "transfer interrupted; resuming",
                    metadata: [
                        "transfer.url": "\(url)", "transfer.offset": "\(ingest.offset)", "transfer.failure": "\(failure)", "transfer.waitSeconds": "\(wait)",
                    ])
                try await sleep(wait)
            case .fail(let reason):
                Self.failures.increment()
                // Integrity failures poison the partial; network ones leave it for a later resume.
                if case .integrity = failure { ingest.abandon() }
                throw FetchError(url: url, failure: failure, reason: reason, requests: report.requests)
            }
        }
    }

    struct AttemptFailure: Error { let failure: TransferFailure }

    /// One request: resume from the ingest's offset, stream into it.
    func attemptOnce(_ url: String, size: Int64, ingest: Ingest, client: HTTPClient, report: inout FetchReport) async throws {
        var request = HTTPClientRequest(url: url)
        let offset = ingest.offset
        if offset > 0 {
            request.headers.add(name: "Range", value: "bytes=\(offset)-")
            if let validator = ingest.validator { request.headers.add(name: "If-Range", value: validator) }
        }
        let response = try await client.execute(request, timeout: .seconds(Int64(max(1, policy.retryTimeout))))
        let status = Int(response.status.code)
        guard status == 200 || status == 206 || status == 416 else {
            // 4xx fails at once; 5xx (and 503 with Retry-After) resumes: the policy decides.
            throw AttemptFailure(failure: .http(status: status, retryAfter: Self.retryAfter(response.headers)))
        }
        if offset > 0 || status != 200 {
            switch ResumeCheck.check(status: status, contentRange: response.headers.first(name: "content-range"), offset: offset, total: size) {
            case .append: break
            case .restart:
                report.restarts += 1
                logger.notice("server sent the whole representation (validator changed); starting over", metadata: ["transfer.url": "\(url)"])
                try ingest.restart()
            case .fail(let reason):
                throw AttemptFailure(failure: .integrity("\(url): \(reason)"))
            }
        }
        if status == 416 { return }  // every byte already held
        if status == 200, let declared = response.headers.first(name: "content-length").flatMap(Int64.init), declared != size {
            throw AttemptFailure(failure: .integrity("\(url): Content-Length \(declared) differs from the signed length \(size)"))
        }
        try ingest.setValidator(Self.validator(response.headers))
        var stall = StallDetector(minBytesPerSecond: minBytesPerSecond, window: stallWindow)
        stall.record(bytes: 0, at: now())
        for try await chunk in response.body {
            let count = Int64(chunk.readableBytes)
            report.bytesReceived += count
            Self.received.increment(by: Int(count))
            guard ingest.offset + count <= size else {
                throw AttemptFailure(failure: .integrity("\(url): server sent more than the signed length \(size)"))
            }
            try chunk.withUnsafeReadableBytes { try ingest.write($0) }
            let time = now()
            stall.record(bytes: Int(count), at: time)
            if let stalled = stall.check(at: time) { throw AttemptFailure(failure: stalled) }
        }
    }

    /// A strong validator only: weak ETags cannot be used with If-Range (RFC 9110 §13.1.5).
    static func validator(_ headers: HTTPHeaders) -> String? {
        if let etag = headers.first(name: "etag"), !etag.hasPrefix("W/") { return etag }
        return headers.first(name: "last-modified")
    }

    static func retryAfter(_ headers: HTTPHeaders) -> Double? {
        headers.first(name: "retry-after").flatMap { Double($0.trimmingWhitespace()) }
    }

    func makeClient(for url: String) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(connectTimeout * 1000)), read: .milliseconds(Int64(stallWindow * 1000)))
        configuration.redirectConfiguration = .follow(max: 5, allowCycles: false)
        configuration.decompression = .disabled
        if let proxy = proxies.proxy(forURL: url) {
            configuration.proxy = .server(host: proxy.host, port: proxy.port)
        }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
