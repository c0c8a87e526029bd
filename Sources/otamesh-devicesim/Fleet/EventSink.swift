import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes JSON lines to stdout, one `write(2)` per line so lines from concurrent devices never
/// interleave, and keeps the numbers the summary needs.
final class EventSink: Sendable {
    struct Totals {
        var latencies: [Double] = []
        var polls = 0
        var failures = 0
        var requests = 0
        var bytes = 0
    }

    private let totals = Mutex(Totals())
    private let output = Mutex(())
    let quiet: Bool

    init(quiet: Bool) { self.quiet = quiet }

    /// Prints one event line (poll / no-update / skipped lines are dropped with `--quiet`).
    func emit(_ line: JSONLine, routine: Bool = false) {
        if quiet && routine { return }
        write(line.text)
    }

    func write(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.append(0x0A)
        output.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = posixWrite(1, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 {
                        if n < 0 && errno == EINTR { continue }
                        return
                    }
                    offset += n
                }
            }
        }
    }

    func record(_ report: PollReport) {
        totals.withLock { t in
            t.polls += 1
            t.requests += report.requests
            t.bytes += report.bytes
            if let latency = report.latencyMS { t.latencies.append(latency) }
            if case .failed = report.outcome { t.failures += 1 }
        }
    }

    func snapshot() -> Totals { totals.withLock { $0 } }
}

/// `write(2)`, named so it cannot be confused with ``EventSink/write(_:)``.
private func posixWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}
