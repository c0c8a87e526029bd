import OTAMeshCommon
import Testing

/// The one representation of a date: what every older unit reads off it.
@Suite("wall clock")
struct WallClockTests {
    @Test("a wall time in milliseconds gives seconds, whole seconds and microseconds; spans are Durations")
    func units() {
        let time = WallTime(milliseconds: 1_800_000_000_123)
        #expect(time.seconds == 1_800_000_000.123 && time.wholeSeconds == 1_800_000_000 && time.microseconds == 1_800_000_000_123_000)
        #expect(WallTime(seconds: 1_800_000_000.1239) == WallTime(milliseconds: 1_800_000_000_123))
        #expect(time + .seconds(2) == WallTime(milliseconds: 1_800_000_002_123))
        #expect(time - WallTime(milliseconds: 1_800_000_000_000) == .milliseconds(123))
        #expect(
            WallTime(milliseconds: -1).wholeSeconds == -1 && WallTime(milliseconds: -1).microseconds == 0,
            "before the epoch: rounded down, no negative microseconds")
        #expect(WallTime(seconds: .nan) == .epoch && WallTime(seconds: .infinity).milliseconds == .max && WallTime(seconds: -.infinity).milliseconds == .min)
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max && Duration.milliseconds(-5).wholeMilliseconds == -5)
    }

    @Test("the system clock reads the real time; an injected one reads what the test says")
    func clocks() {
        let now = WallClock.system.now()
        #expect(now > WallTime(seconds: 1_700_000_000), "after 2023")
        #expect(WallClock.fixed(.epoch).now() == .epoch)
    }
}
