import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Records SIGINT, SIGTERM and SIGHUP so the runner can stop at its next check and tear down
/// (the runner polls; nothing is torn down from a signal handler).
public final class StopSignal: @unchecked Sendable {
    // @unchecked: `received` is guarded by `lock`; the sources are only touched in install().
    private let lock = NSLock()
    private var received: Int32?
    private var sources: [any DispatchSourceSignal] = []

    public init() {}

    /// Routes the signals here instead of their default action.
    public func install() {
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.record(number) }
            source.resume()
            sources.append(source)
        }
    }

    func record(_ number: Int32) { lock.withLock { if received == nil { received = number } } }

    /// The first signal received, if any.
    public var requested: Int32? { lock.withLock { received } }
}
