#if canImport(Glibc)
import Glibc
#endif

/// A wall-clock instant: milliseconds since the Unix epoch. The one representation of "when"
/// that crosses a module boundary; spans are `Duration`. The older units (seconds as `Double`
/// in the registry and the store, whole seconds for TUF expiry and signed requests,
/// microseconds for gossip record versions) are read off it, never taken from another clock.
public struct WallTime: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// From seconds since the epoch (rounded down to the millisecond; not finite: the epoch).
    public init(seconds: Double) {
        let value = (seconds * 1000).rounded(.down)
        milliseconds = value.isNaN ? 0 : value >= 9.2e18 ? .max : value <= -9.2e18 ? .min : Int64(value)
    }

    public static let epoch = WallTime(milliseconds: 0)

    /// Seconds since the epoch, with the milliseconds as a fraction.
    public var seconds: Double { Double(milliseconds) / 1000 }
    /// Whole seconds since the epoch (rounded down).
    public var wholeSeconds: Int64 { milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000 }
    /// Microseconds since the epoch; 0 before it.
    public var microseconds: UInt64 { UInt64(max(0, milliseconds)).multipliedReportingOverflow(by: 1000).partialValue }

    public static func < (a: WallTime, b: WallTime) -> Bool { a.milliseconds < b.milliseconds }

    public static func + (time: WallTime, span: Duration) -> WallTime {
        WallTime(milliseconds: time.milliseconds &+ span.wholeMilliseconds)
    }

    public static func - (a: WallTime, b: WallTime) -> Duration { .milliseconds(a.milliseconds &- b.milliseconds) }

    public var description: String { "\(milliseconds) ms" }
}

extension Duration {
    /// The span in whole milliseconds (rounded toward zero, saturating).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow, seconds.magnitude < 9_000_000_000_000_000 else { return seconds < 0 ? .min : .max }
        return scaled + attoseconds / 1_000_000_000_000_000
    }
}

/// The wall clock, injected: the agent makes one (``system``) and hands it to every part that
/// needs "now" as a date — the rollout engine, the mesh's record times, the registry's
/// sightings, TUF expiry, signed requests. Tests give a fixed or stepped one. Monotonic timing
/// (timeouts, SWIM) uses `ContinuousClock` instead.
public struct WallClock: Sendable {
    private let read: @Sendable () -> WallTime

    public init(_ read: @escaping @Sendable () -> WallTime) {
        self.read = read
    }

    public func now() -> WallTime { read() }

    /// The system's real-time clock.
    public static let system = WallClock {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallTime(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    /// Always `time`.
    public static func fixed(_ time: WallTime) -> WallClock { WallClock { time } }
}
