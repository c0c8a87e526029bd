import Testing

@testable import OTAMeshGateway

@Suite("admin API failed-credential limit")
struct AuthFailureLimiterTests {
    @Test("limiter: a burst of failures, then one per refill period; 429's Retry-After counts down; other clients unaffected")
    func limiterBurst() {
        var limiter = AuthFailureLimiter(burst: 3, refillSeconds: 10, capacity: 16)
        let now = 1000.0
        for attempt in 0..<3 {
            #expect(limiter.decision(for: "10.0.0.5", now: now) == .allowed, "attempt \(attempt)")
            limiter.recordFailure(from: "10.0.0.5", now: now)
        }
        #expect(limiter.decision(for: "10.0.0.5", now: now) == .limited(retryAfter: 10))
        #expect(limiter.decision(for: "10.0.0.5", now: now + 7.5) == .limited(retryAfter: 3))
        #expect(limiter.decision(for: "10.0.0.6", now: now) == .allowed)
        // One token grew back: one more failure, then limited again.
        #expect(limiter.decision(for: "10.0.0.5", now: now + 10) == .allowed)
        limiter.recordFailure(from: "10.0.0.5", now: now + 10)
        #expect(limiter.decision(for: "10.0.0.5", now: now + 10) == .limited(retryAfter: 10))
        // Whole again after burst × refill.
        #expect(limiter.decision(for: "10.0.0.5", now: now + 40) == .allowed)
        // A clock that goes back counts as no time passed (never a negative wait, never a crash).
        #expect(limiter.decision(for: "10.0.0.5", now: 0) == .limited(retryAfter: 10))
    }

    @Test("limiter: IPv6 clients are told apart by /64, IPv4-mapped as IPv4")
    func limiterKeys() {
        #expect(AuthFailureLimiter.key("2001:db8:1:2:aaaa::1") == AuthFailureLimiter.key("2001:db8:1:2:bbbb::2"))
        #expect(AuthFailureLimiter.key("2001:db8:1:2::1") != AuthFailureLimiter.key("2001:db8:1:3::1"))
        #expect(AuthFailureLimiter.key("::ffff:10.1.2.3") == "10.1.2.3")
        #expect(AuthFailureLimiter.key("10.1.2.3") == "10.1.2.3")
        var limiter = AuthFailureLimiter(burst: 1, refillSeconds: 60, capacity: 16)
        limiter.recordFailure(from: "2001:db8::1", now: 0)
        #expect(limiter.decision(for: "2001:db8::ffff", now: 30) == .limited(retryAfter: 30))
    }

    @Test("limiter: the table never holds more than its capacity; whole buckets go first, then the least recently failed")
    func limiterBounded() {
        var limiter = AuthFailureLimiter(burst: 2, refillSeconds: 10, capacity: 8)
        for index in 0..<1000 { limiter.recordFailure(from: "10.0.\(index / 256).\(index % 256)", now: Double(index) / 1000) }
        #expect(limiter.count == 8)
        // The most recent clients are still tracked.
        limiter.recordFailure(from: "10.0.3.231", now: 1)
        #expect(limiter.decision(for: "10.0.3.231", now: 1) == .limited(retryAfter: 10))
        // Long after, every bucket is whole: a new client takes the room of all of them at once.
        limiter.recordFailure(from: "192.168.0.1", now: 10_000)
        #expect(limiter.count == 1)
    }
}
