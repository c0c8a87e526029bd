/// Why one transfer attempt failed, as the retry policy sees it.
public enum TransferFailure: Sendable, Equatable, CustomStringConvertible {
    /// Connect/read timeout, reset, refused, unreachable, DNS failure, TLS handshake timeout.
    case network(String)
    /// Fewer bytes than the minimum rate over the stall window.
    case stalled(bytesPerSecond: Double)
    /// An HTTP status from the server; `retryAfter` from a 503's `Retry-After` header (seconds).
    case http(status: Int, retryAfter: Double?)
    /// The bytes are wrong: hash or length mismatch, a Content-Range that does not fit.
    case integrity(String)
    /// Local failure (ENOSPC, unwritable directory).
    case local(String)

    public var description: String {
        switch self {
        case .network(let why): "network: \(why)"
        case .stalled(let rate): "stalled at \(Int(rate)) B/s"
        case let .http(status, retryAfter): "HTTP \(status)" + (retryAfter.map { " (Retry-After \(Int($0)) s)" } ?? "")
        case .integrity(let why): why
        case .local(let why): why
        }
    }

    /// Network-class failures resume (WinnerMicro's rule: retry a network timeout until the
    /// retry timeout passes); everything else fails at once.
    public var isRetryable: Bool {
        switch self {
        case .network, .stalled: true
        case .http(let status, _): status >= 500 && status <= 599
        case .integrity, .local: false
        }
    }
}

/// The retry-timeout policy: after a retryable failure, wait (exponential backoff with full
/// jitter, or the server's Retry-After) and resume — until `retryTimeout` has passed since the
/// transfer began or `maxReconnects` reconnections were made. Pure: time and randomness are
/// passed in.
public struct RetryPolicy: Sendable, Equatable {
    /// Total time budget for one transfer, seconds (WM IoT SDK's CONFIG_OTA_RETRY_TIMEOUT).
    public var retryTimeout: Double = 300
    /// Most reconnections for one transfer.
    public var maxReconnects: Int = 100
    public var initialBackoff: Double = 0.25
    public var maxBackoff: Double = 15
    /// A Retry-After longer than this is capped (a hostile server cannot park us for a day).
    public var maxRetryAfter: Double = 60

    public init() {}

    /// What to do after a failure.
    public enum Decision: Sendable, Equatable {
        /// Wait this many seconds, then resume from the persisted offset.
        case retry(after: Double)
        /// Give up; the reason names the failure and why it is final.
        case fail(reason: String)
    }

    /// Decides after the `attempt`-th failure (1-based), `elapsed` seconds since the transfer
    /// began; `random` is uniform in [0, 1).
    public func decide(_ failure: TransferFailure, attempt: Int, elapsed: Double, random: Double) -> Decision {
        guard failure.isRetryable else { return .fail(reason: "\(failure) (not retryable)") }
        guard attempt <= maxReconnects else { return .fail(reason: "\(failure); gave up after \(maxReconnects) reconnects") }
        var wait = min(maxBackoff, initialBackoff * pow2(attempt - 1)) * max(0, min(1, random))
        if case .http(503, let retryAfter?) = failure { wait = min(max(0, retryAfter), maxRetryAfter) }
        guard elapsed + wait < retryTimeout else {
            return .fail(reason: "\(failure); retry timeout of \(Int(retryTimeout)) s reached")
        }
        return .retry(after: wait)
    }

    private func pow2(_ exponent: Int) -> Double {
        var value = 1.0
        for _ in 0..<min(max(0, exponent), 62) { value *= 2 }
        return value
    }
}

/// Detects a stall: fewer than `minBytesPerSecond` over the last `window` seconds. Pure: feed it
/// byte counts with their times.
public struct StallDetector: Sendable {
    public let minBytesPerSecond: Double
    public let window: Double
    private var samples: [(time: Double, bytes: Int)] = []
    private var started: Double?

    public init(minBytesPerSecond: Double = 100, window: Double = 60) {
        self.minBytesPerSecond = minBytesPerSecond
        self.window = window
    }

    /// Records `bytes` received at `time` (seconds, monotonic).
    public mutating func record(bytes: Int, at time: Double) {
        if started == nil { started = time }
        samples.append((time, bytes))
        samples.removeAll { $0.time < time - window }
    }

    /// Returns the failure when the transfer has run a full window below the minimum rate.
    public func check(at time: Double) -> TransferFailure? {
        guard let started, time - started >= window else { return nil }
        let recent = samples.filter { $0.time >= time - window }.reduce(0) { $0 + $1.bytes }
        let rate = Double(recent) / window
        return rate < minBytesPerSecond ? .stalled(bytesPerSecond: rate) : nil
    }
}
