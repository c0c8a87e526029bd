import NIOConcurrencyHelpers

/// The gateway's running pushes, as children of one task group (``run()``, owned by
/// ``RolloutService``) instead of detached tasks. When the agent stops, the group stops taking
/// pushes, cancels those running and returns only once each has ended, so no push writes to
/// the registry or the mesh after the services under it stopped. A push cut short this way
/// records no failure: its attempt stays in flight and is taken up again at the next start.
final class PushRunner: Sendable {
    typealias Job = @Sendable () async -> Void

    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation
    private let open = NIOLockedValueBox(true)
    private let active = NIOLockedValueBox(0)

    init() {
        (jobs, continuation) = AsyncStream.makeStream()
    }

    /// False once the runner began to stop: start nothing new then.
    var accepting: Bool { open.withLockedValue { $0 } }

    /// Queues one push; false when the runner is stopping or stopped (the push does not run).
    func submit(_ job: @escaping Job) -> Bool {
        guard accepting, case .enqueued = continuation.yield(job) else { return false }
        return true
    }

    /// Pushes running now.
    var running: Int { active.withLockedValue { $0 } }

    /// Runs queued pushes until the calling task is cancelled, then cancels the running ones
    /// and returns when all have ended (`stopping` is told how many there are). Runs once.
    func run(stopping: @Sendable (Int) -> Void = { _ in }) async {
        await withDiscardingTaskGroup { group in
            await withTaskCancellationHandler {
                for await job in jobs {
                    active.withLockedValue { $0 += 1 }
                    group.addTask { [active] in
                        defer { active.withLockedValue { $0 -= 1 } }
                        await job()
                    }
                }
            } onCancel: {
                open.withLockedValue { $0 = false }
                continuation.finish()
            }
            open.withLockedValue { $0 = false }
            stopping(running)
            group.cancelAll()
        }
    }
}
