import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshTransfer

@Suite("retry-timeout policy")
struct RetryPolicyTests {
    @Test(
        "network-class failures resume; anything else fails at once",
        arguments: [
            (TransferFailure.network("connection reset"), true), (.network("DNS: no such host"), true),
            (.stalled(bytesPerSecond: 3), true), (.http(status: 500, retryAfter: nil), true), (.http(status: 503, retryAfter: 2), true),
            (.http(status: 404, retryAfter: nil), false), (.http(status: 416, retryAfter: nil), false), (.http(status: 403, retryAfter: nil), false),
            (.integrity("sha256 mismatch"), false), (.local("No space left on device (ENOSPC)"), false),
        ])
    func classification(failure: TransferFailure, retryable: Bool) {
        #expect(failure.isRetryable == retryable)
        let decision = RetryPolicy().decide(failure, attempt: 1, elapsed: 0, random: 0.5)
        if retryable {
            guard case .retry = decision else { Issue.record("\(failure) should retry"); return }
        } else {
            #expect(decision == .fail(reason: "\(failure) (not retryable)"))
        }
    }

    @Test("backoff grows exponentially with full jitter, capped")
    func backoff() {
        let policy = RetryPolicy()
        #expect(policy.decide(.network("t"), attempt: 1, elapsed: 0, random: 0.999) == .retry(after: 0.25 * 0.999))
        #expect(policy.decide(.network("t"), attempt: 4, elapsed: 0, random: 1) == .retry(after: 2))
        #expect(policy.decide(.network("t"), attempt: 40, elapsed: 0, random: 1) == .retry(after: 15), "capped at maxBackoff")
        #expect(policy.decide(.network("t"), attempt: 3, elapsed: 0, random: 0) == .retry(after: 0))
        #expect(policy.decide(.network("t"), attempt: 3, elapsed: 0, random: 7) == .retry(after: 1), "random is clamped to [0, 1]")
    }

    @Test("Retry-After is honoured but capped; the deadline and the reconnect limit end retries")
    func limits() {
        var policy = RetryPolicy()
        #expect(policy.decide(.http(status: 503, retryAfter: 5), attempt: 1, elapsed: 0, random: 0) == .retry(after: 5))
        #expect(policy.decide(.http(status: 503, retryAfter: 86_400), attempt: 1, elapsed: 0, random: 0) == .retry(after: 60))
        policy.retryTimeout = 30
        #expect(
            policy.decide(.network("timeout"), attempt: 2, elapsed: 29.9, random: 1)
                == .fail(reason: "network: timeout; retry timeout of 30 s reached"))
        policy.maxReconnects = 3
        #expect(policy.decide(.network("reset"), attempt: 4, elapsed: 0, random: 0) == .fail(reason: "network: reset; gave up after 3 reconnects"))
    }

    @Test("a transfer's whole retry schedule stays within the timeout")
    func schedule() {
        let policy = RetryPolicy()
        var rng = SplitMix64(seed: 9)
        var elapsed = 0.0
        var attempt = 1
        while case .retry(let wait) = policy.decide(.network("drop"), attempt: attempt, elapsed: elapsed, random: Double(rng.next() % 1000) / 1000) {
            elapsed += wait + 1  // one second of work per attempt
            attempt += 1
        }
        #expect(elapsed <= policy.retryTimeout + 1)
        #expect(attempt > 10)
    }

    @Test("stall detection: below the minimum rate for a whole window")
    func stall() {
        var detector = StallDetector(minBytesPerSecond: 100, window: 10)
        detector.record(bytes: 5_000, at: 0)
        #expect(detector.check(at: 5) == nil, "not a full window yet")
        detector.record(bytes: 900, at: 8)
        #expect(detector.check(at: 10.5) == .stalled(bytesPerSecond: 90))
        detector.record(bytes: 2_000, at: 11)
        #expect(detector.check(at: 12) == nil)
    }
}
