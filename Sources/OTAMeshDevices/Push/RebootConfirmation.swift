/// Whether a device that took an image answers, is away (since when), or is back after an
/// absence. Every push machine follows its device through the reboot with it; as one value it
/// cannot say "away" without saying since when, as the old pair of flags could.
enum DevicePresence: Sendable, Equatable {
    /// It has answered every time since it took the image.
    case answering
    case away(since: Int64)
    /// It was away, and answers again: it restarted.
    case back

    /// It answered; returns whether it had been away since it took the image.
    mutating func answered() -> Bool {
        guard self != .answering else { return false }
        self = .back
        return true
    }

    /// It did not answer at `now`; returns how long it has been away this time.
    mutating func missed(now: Int64) -> Int64 {
        if case .away(let since) = self { return now - since }
        self = .away(since: now)
        return 0
    }
}

/// After a device took an image and restarts: waiting for it to report the image's version,
/// for the push families whose device says nothing of its own reboot (HTTP upload,
/// ArduinoOTA). The shell polls a version endpoint; this judges each answer.
///
/// The device may still answer for a moment before it restarts; once it went away and came
/// back (or ``PushTiming/rebootGrace`` is over) the old version is the one it booted:
/// ``PushFailure/Kind/rebootedIntoOld``. Away for longer than ``PushTiming/unreachableLimit``
/// is ``PushFailure/Kind/timeout``.
struct RebootConfirmation: Sendable, Equatable {
    enum Verdict: Sendable, Equatable {
        case confirmed(String)
        /// Ask again after one poll interval.
        case pollAgain
        case failed(PushFailure)
    }

    /// The image's version.
    let expected: String
    /// The version the registry saw before the push, if any.
    let before: String?
    /// When the device took the image.
    let since: Int64
    var presence = DevicePresence.answering
    private(set) var lastVersion: String?

    init(expected: String, before: String?, since: Int64) {
        self.expected = expected
        self.before = before
        self.since = since
    }

    /// The device answered `version`.
    mutating func reported(_ version: String, now: Int64, timing: PushTiming) -> Verdict {
        let wasDown = presence.answered()
        lastVersion = version
        if version == expected { return .confirmed(version) }
        if wasDown || now - since > timing.rebootGrace {
            let how = wasDown ? "rebooted and reports" : "still reports \(timing.rebootGrace / 1000) s after the upload:"
            return .failed(PushFailure(.rebootedIntoOld, "device \(how) \(version), not \(expected)\(before.map { " (it ran \($0) before)" } ?? "")"))
        }
        return .pollAgain
    }

    /// The version endpoint did not answer (or not with a version).
    mutating func unreachable(_ reason: String, now: Int64, timing: PushTiming) -> Verdict {
        guard presence.missed(now: now) <= timing.unreachableLimit else {
            return .failed(PushFailure(.timeout, "device did not answer a version within \(timing.unreachableLimit / 1000) s of its reboot: \(reason)"))
        }
        return .pollAgain
    }
}
