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
    var downSince: Int64?
    var wentDown = false
    private(set) var lastVersion: String?

    init(expected: String, before: String?, since: Int64) {
        self.expected = expected
        self.before = before
        self.since = since
    }

    /// The device answered `version`.
    mutating func reported(_ version: String, now: Int64, timing: PushTiming) -> Verdict {
        let wasDown = wentDown
        downSince = nil
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
        let away = downSince ?? now
        downSince = away
        wentDown = true
        guard now - away <= timing.unreachableLimit else {
            return .failed(PushFailure(.timeout, "device did not answer a version within \(timing.unreachableLimit / 1000) s of its reboot: \(reason)"))
        }
        return .pollAgain
    }
}
