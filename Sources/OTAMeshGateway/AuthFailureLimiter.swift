/// Slows down credential guessing on the admin API: every failed credential (an unknown bearer
/// token, a refused signature) from a client takes one token from that client's bucket; a client
/// whose bucket is empty is answered 429 with `Retry-After` until a token has grown back, without
/// its credential being looked at. A bucket holds ``burst`` tokens and regains one every
/// ``refillSeconds``, so a client may fail ``burst`` times at once, then once per ``refillSeconds``.
///
/// Pure: the caller passes the time (seconds on a monotonic clock) and the client's address.
/// Clients are told apart by IPv4 address, and by /64 prefix for IPv6 (a host picks addresses
/// from its /64 at will). The table is bounded (``capacity``): when it is full, buckets that have
/// grown back whole are dropped first (they mean the same as none), then the least recently failed.
public struct AuthFailureLimiter: Sendable {
    public let burst: Double
    public let refillSeconds: Double
    public let capacity: Int

    struct Bucket: Sendable {
        var tokens: Double
        var updated: Double
    }

    private(set) var buckets: [String: Bucket] = [:]

    /// What to do with a request from a client.
    public enum Decision: Sendable, Equatable {
        case allowed
        /// Refused for now; a token grows back in this many whole seconds (at least 1).
        case limited(retryAfter: Int)
    }

    public init(burst: Int = 10, refillSeconds: Double = 6, capacity: Int = 4096) {
        self.burst = Double(max(1, burst))
        self.refillSeconds = max(0.001, refillSeconds)
        self.capacity = max(1, capacity)
    }

    /// How many clients the table holds now.
    public var count: Int { buckets.count }

    /// Whether a request from `address` may have its credential checked at `now`.
    public func decision(for address: String, now: Double) -> Decision {
        guard let bucket = buckets[Self.key(address)] else { return .allowed }
        let tokens = refilled(bucket, now: now)
        guard tokens < 1 else { return .allowed }
        let wait = (1 - tokens) * refillSeconds
        return .limited(retryAfter: max(1, Int(wait.rounded(.up))))
    }

    /// Counts a failed credential from `address` at `now`.
    public mutating func recordFailure(from address: String, now: Double) {
        let key = Self.key(address)
        var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
        bucket.tokens = max(0, refilled(bucket, now: now) - 1)
        bucket.updated = max(bucket.updated, now)
        if buckets[key] == nil, buckets.count >= capacity { makeRoom(now: now) }
        buckets[key] = bucket
    }

    /// Tokens in a bucket at `now` (a clock that went back counts as no time passed).
    func refilled(_ bucket: Bucket, now: Double) -> Double {
        min(burst, bucket.tokens + max(0, now - bucket.updated) / refillSeconds)
    }

    /// Drops the whole buckets; if none is whole, the least recently failed one.
    mutating func makeRoom(now: Double) {
        let whole = buckets.filter { refilled($0.value, now: now) >= burst }.map(\.key)
        for key in whole { buckets[key] = nil }
        guard buckets.count >= capacity, let oldest = buckets.min(by: { $0.value.updated < $1.value.updated })?.key else { return }
        buckets[oldest] = nil
    }

    /// The client an address stands for: IPv4 as it is, IPv6 by its first 64 bits (an IPv4-mapped
    /// IPv6 address as its IPv4 address); anything else (a Unix socket path, "?") as it is.
    static func key(_ address: String) -> String {
        if let bytes = SiteCA.ipBytes(address), bytes.count == 16 {
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
                return bytes[12...].map(String.init).joined(separator: ".")
            }
            return SiteCA.slash64(bytes)
        }
        return address
    }
}
