import OTAMeshCommon

/// Runs many emulated devices in one process: one Swift task per device, sleeping between
/// polls (no thread per device, no busy waiting); all network I/O is SwiftNIO on a shared
/// event loop group.
struct Fleet: Sendable {
    let settings: RunSettings
    let count: Int
    let interval: Duration
    /// Polls per device (nil: unbounded; then `untilUpdated` or `deadline` ends the run).
    let polls: Int?
    let untilUpdated: Bool
    /// With `untilUpdated`: a device also counts as done once it runs this version and the
    /// gateway has nothing newer (for devices that start on it).
    let targetVersion: String?
    /// Spread the first polls over one interval (false: every device starts at once).
    let stagger: Bool
    let deadline: Duration?
    let transport: Transport
    let sink: EventSink

    struct DeviceResult: Sendable {
        var id: String
        var version: String
        var updated = false
        var done = false
        var failed = false
        var polls = 0
    }

    struct Result: Sendable {
        var devices: [DeviceResult]
        var elapsed: Duration
        var timedOut: Bool

        var updated: Int { devices.filter(\.updated).count }
        var failed: Int { devices.filter(\.failed).count }
        var done: Int { devices.filter(\.done).count }
    }

    func run() async -> Result {
        let clock = ContinuousClock()
        let start = clock.now
        var results: [DeviceResult] = []
        var timedOut = false
        await withTaskGroup(of: DeviceResult?.self) { group in
            for index in 0..<count {
                group.addTask { await runDevice(index: index, start: start) }
            }
            if let deadline {
                group.addTask {
                    try? await Task.sleep(until: start + deadline, clock: clock)
                    return nil  // the deadline marker
                }
            }
            while let next = await group.next() {
                if let result = next {
                    results.append(result)
                    if results.count == count { group.cancelAll() }
                } else if results.count < count {
                    timedOut = true
                    group.cancelAll()
                }
            }
        }
        results.sort { $0.id < $1.id }
        return Result(devices: results, elapsed: clock.now - start, timedOut: timedOut)
    }

    private func makeDevice(_ identity: DeviceIdentity) -> any EmulatedDevice {
        switch settings.family {
        case .esp8266HTTPUpdate: ArduinoHTTPUpdateDevice(identity: identity, esp8266: true, settings: settings)
        case .esp32HTTPUpdate: ArduinoHTTPUpdateDevice(identity: identity, esp8266: false, settings: settings)
        case .espHTTPSOTA: HTTPSOTADevice(identity: identity, settings: settings)
        case .esp8266FOTA: FOTADevice(identity: identity, settings: settings)
        case .wiphone: WiPhoneDevice(identity: identity, settings: settings)
        case .ddi: DDIDevice(identity: identity, settings: settings)
        default: GenericDevice(identity: identity, settings: settings)  // .generic (run accepts pull families only)
        }
    }

    private func runDevice(index: Int, start: ContinuousClock.Instant) async -> DeviceResult {
        let identity = DeviceIdentity(index: index, base: settings.macBase)
        var device = makeDevice(identity)
        var result = DeviceResult(id: identity.id, version: device.version)
        let clock = ContinuousClock()
        let offset = stagger && count > 1 ? interval / count * index : .zero
        var pollIndex = 0
        while polls.map({ pollIndex < $0 }) ?? true {
            let due = start + offset + interval * pollIndex
            if due > clock.now {
                do { try await Task.sleep(until: due, clock: clock) } catch { break }
            }
            if Task.isCancelled { break }
            let context = PollContext(settings: settings, transport: transport)
            let began = clock.now
            let versionBefore = device.version
            var report = await device.poll(context)
            // The run's deadline cut this poll short: its (partial) outcome is not reported.
            if Task.isCancelled { break }
            report.totalMS = PollContext.ms(clock.now - began)
            pollIndex += 1
            sink.record(report)
            emit(report, identity: identity, poll: pollIndex, versionBefore: versionBefore, versionAfter: device.version)
            switch report.outcome {
            case .updated:
                result.updated = true
                result.failed = false
            case .noUpdate:
                result.failed = false
                // With a filesystem, done also needs it current (the gateway answered its check with 304).
                let filesystemDone: Bool
                if settings.filesystem == nil {
                    filesystemDone = true
                } else if case .current(let id) = report.filesystem, id != "none" {
                    filesystemDone = true
                } else {
                    filesystemDone = false
                }
                if (result.updated || targetVersion.map({ $0 == device.version }) == true) && filesystemDone { result.done = true }
            case .failed:
                result.failed = true
            case .skipped, .powerLoss:
                break
            }
            result.polls = pollIndex
            result.version = device.version
            if untilUpdated && result.done {
                var line = JSONLine()
                line.add("device", identity.id)
                line.add("event", "done")
                line.add("version", device.version)
                line.add("polls", pollIndex)
                sink.emit(line)
                break
            }
        }
        result.version = device.version
        return result
    }

    private func emit(_ report: PollReport, identity: DeviceIdentity, poll: Int, versionBefore: String, versionAfter: String) {
        let id = identity.id
        if report.requests > 0 {
            var line = JSONLine()
            line.add("device", id)
            line.add("event", "poll")
            line.add("poll", poll)
            line.add("reported", report.reported)
            line.add("status", report.status)
            line.add("latency_ms", report.latencyMS)
            sink.emit(line, routine: true)
        }
        for fault in report.faults where fault.kind != FaultState.Kind.powerLoss.rawValue {  // the outcome says it
            var line = JSONLine()
            line.add("device", id)
            line.add("event", "fault")
            line.add("kind", fault.kind)
            line.add("at_byte", fault.offset)
            sink.emit(line)
        }
        if let filesystem = report.filesystem { emitFilesystem(filesystem, device: id) }
        var line = JSONLine()
        line.add("device", id)
        switch report.outcome {
        case .noUpdate(let reason):
            line.add("event", "no-update")
            line.add("version", versionAfter)
            line.add("reason", reason)
            sink.emit(line, routine: true)
            return
        case .updated(let from, let to):
            line.add("event", "updated")
            line.add("from", from)
            line.add("to", to)
        case .failed(let stage, let reason, let code):
            line.add("event", "failed")
            line.add("stage", stage)
            line.add("reason", reason)
            line.add("code", code)
            line.add("version", versionAfter)
        case .skipped(let reason):
            line.add("event", "skipped")
            line.add("version", versionAfter)
            line.add("reason", reason)
            sink.emit(line, routine: true)
            return
        case .powerLoss(let at):
            line.add("event", "power-loss")
            line.add("at_byte", at)
            line.add("version", versionAfter)
        }
        line.add("bytes", report.bytes)
        line.add("requests", report.requests)
        line.add("ms", report.totalMS)
        sink.emit(line)
    }

    /// `configured` (with each setting read, as `setting.KEY`), `filesystem-current`, `filesystem-failed`.
    private func emitFilesystem(_ outcome: FilesystemOutcome, device: String) {
        var line = JSONLine()
        line.add("device", device)
        switch outcome {
        case .current(let id):
            line.add("event", "filesystem-current")
            line.add("config", id)
            sink.emit(line, routine: true)
        case .configured(let mounted):
            line.add("event", "configured")
            line.add("config", mounted.configID)
            for (key, value) in mounted.settings { line.add("setting." + key, value) }
            sink.emit(line)
        case .failed(let reason):
            line.add("event", "filesystem-failed")
            line.add("reason", reason)
            sink.emit(line)
        }
    }
}
