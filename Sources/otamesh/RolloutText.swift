import Foundation
import OTAMeshGateway
import OTAMeshRollout

/// The pure side of `otamesh rollout`: option text into a plan, and rollout statuses into text.
/// No I/O here, so all of it is unit-tested.
enum RolloutText {
    /// An option value that cannot be used, named by its option.
    struct Invalid: Error, Equatable, CustomStringConvertible {
        let option: String
        let reason: String
        var description: String { "\(option): \(reason)" }
    }

    // MARK: Parsing

    /// `30s`, `10m`, `1h`, `2d` (or bare seconds) into whole seconds.
    static func duration(_ text: String, option: String) throws(Invalid) -> Int64 {
        guard let seconds = AgentConfiguration.parseDuration(text), seconds < 1e12, seconds == seconds.rounded() else {
            throw Invalid(option: option, reason: "expected a duration like 30s, 10m or 1h, got '\(text)'")
        }
        return Int64(seconds)
    }

    /// `95%` (or `95`) into 95; 0…100.
    static func percent(_ text: String, option: String) throws(Invalid) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.hasSuffix("%") ? String(trimmed.dropLast()) : trimmed
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits), (0...100).contains(value) else {
            throw Invalid(option: option, reason: "expected a percentage 0%…100% like 95%, got '\(text)'")
        }
        return value
    }

    /// `1,10,50,100` (a `%` after each is allowed) into cumulative percentages, rising within 1…100.
    static func stages(_ text: String) throws(Invalid) -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty, !parts.contains(where: \.isEmpty) else {
            throw Invalid(option: "--stages", reason: "expected cumulative percentages like 1,10,50,100, got '\(text)'")
        }
        var stages: [Int] = []
        for part in parts {
            let value: Int
            do { value = try percent(part, option: "--stages") } catch {
                throw Invalid(option: "--stages", reason: "'\(part)' is not a percentage (in '\(text)'; expected like 1,10,50,100)")
            }
            guard value >= 1 else { throw Invalid(option: "--stages", reason: "a stage of 0% selects no device (in '\(text)')") }
            if let last = stages.last, value <= last {
                throw Invalid(option: "--stages", reason: "stages are cumulative and must rise: \(value)% after \(last)% (in '\(text)')")
            }
            stages.append(value)
        }
        return stages
    }

    /// `--max-failures` given zero, one or two times: a value ending in `%` is the share of
    /// finished devices, otherwise a count. Each form at most once. Not given: 5%, no count.
    static func maxFailures(_ values: [String]) throws(Invalid) -> (percent: Int?, count: Int?) {
        guard !values.isEmpty else { return (5, nil) }
        var percentValue: Int?
        var count: Int?
        for value in values {
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            if trimmed.hasSuffix("%") {
                guard percentValue == nil else {
                    throw Invalid(option: "--max-failures", reason: "a percentage given twice (\(values.joined(separator: ", ")))")
                }
                percentValue = try percent(trimmed, option: "--max-failures")
            } else {
                guard count == nil else {
                    throw Invalid(option: "--max-failures", reason: "a count given twice (\(values.joined(separator: ", "))); a percentage ends in %")
                }
                guard !trimmed.isEmpty, trimmed.allSatisfy(\.isASCII), let number = Int(trimmed), number >= 0 else {
                    throw Invalid(option: "--max-failures", reason: "expected a count like 3 or a percentage like 5%, got '\(value)'")
                }
                count = number
            }
        }
        return (percentValue, count)
    }

    /// The device selector: `key=value,…`, or `all` for every device.
    static func selector(_ text: String) throws -> DeviceSelector {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased() == "all" { return DeviceSelector() }
        guard !trimmed.isEmpty else {
            throw Invalid(option: "--select", reason: "empty; give key=value terms (\(DeviceSelector.keys.joined(separator: ", "))) or 'all' for every device")
        }
        do { return try DeviceSelector(parsing: trimmed) } catch {
            throw Invalid(option: "--select", reason: error.description)
        }
    }

    /// A fresh rollout id: `r-` and 12 random lower-case hex digits.
    static func newID<G: RandomNumberGenerator>(using generator: inout G) -> String {
        let digits = Array("0123456789abcdef")
        return "r-" + String((0..<12).map { _ in digits[Int.random(in: 0..<16, using: &generator)] })
    }

    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return newID(using: &generator)
    }

    /// `r-` and 12 lower-case hex digits.
    static func isValidID(_ id: String) -> Bool {
        let utf8 = Array(id.utf8)
        return utf8.count == 14 && id.hasPrefix("r-") && utf8.dropFirst(2).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func checkID(_ id: String) throws(Invalid) {
        guard isValidID(id) else { throw Invalid(option: "rollout id", reason: "'\(id)' is not r- and 12 lower-case hex digits (see otamesh rollout list)") }
    }

    /// The trusted target with this path, or an error naming the path and what is known.
    static func target(_ path: String, in targets: [TargetInfo]) throws(Invalid) -> TargetInfo {
        if let found = targets.first(where: { $0.path == path }) { return found }
        let known = targets.map(\.path).sorted()
        let shown = known.isEmpty ? "the gateway trusts no targets yet" : "known: \(known.prefix(8).joined(separator: ", "))\(known.count > 8 ? ", …" : "")"
        throw Invalid(option: "--target", reason: "'\(path)' is not a trusted target on this gateway (\(shown); see otamesh images)")
    }

    /// The options of `rollout start` as given (text), before any of them is checked.
    struct StartOptions: Equatable {
        var target: String
        var select: String
        var stages = "1,10,50,100"
        var soak = "10m"
        var success = "95%"
        var maxFailures: [String] = []
        var minFinished = 5
        var concurrency = 4
        var deviceTimeout = "30m"
        var window: String?
        var dynamic = false
        var configuration = false

        /// The plan these options describe for `target` (as looked up on the gateway), validated.
        func plan(id: String, target: RolloutTarget) throws -> RolloutPlan {
            let failures = try RolloutText.maxFailures(maxFailures)
            guard minFinished >= 0 else { throw Invalid(option: "--min-finished", reason: "must not be negative, got \(minFinished)") }
            guard (1...1000).contains(concurrency) else { throw Invalid(option: "--concurrency", reason: "expected 1…1000, got \(concurrency)") }
            let timeout = try RolloutText.duration(deviceTimeout, option: "--device-timeout")
            guard timeout > 0 else { throw Invalid(option: "--device-timeout", reason: "must be above zero") }
            let plan = RolloutPlan(
                id: id,
                target: target,
                selector: try RolloutText.selector(select), stages: try RolloutText.stages(stages),
                soakSeconds: try RolloutText.duration(soak, option: "--soak"), successPercent: try RolloutText.percent(success, option: "--success"),
                maxFailurePercent: failures.percent, maxFailures: failures.count, minFinished: minFinished, concurrency: concurrency,
                deviceTimeoutSeconds: timeout, window: try window.map { (text) throws -> MaintenanceWindow in try MaintenanceWindow(parsing: text) },
                dynamic: dynamic)
            var configured = plan
            configured.configuration = configuration
            try configured.validate()
            return configured
        }
    }

    /// A warning when the selector names hardware the target's metadata says it is not for.
    static func hardwareWarning(plan: RolloutPlan) -> String? {
        plan.hardwareMismatch.map { "warning: \($0)" }
    }

    /// The 0-based stage `advance --stage N` (1-based) means; default: the one after the current.
    static func advanceStage(requested: Int?, current: Int, count: Int) throws(Invalid) -> Int {
        guard count > 0 else { throw Invalid(option: "--stage", reason: "the rollout has no plan yet") }
        if let requested {
            guard (1...count).contains(requested) else { throw Invalid(option: "--stage", reason: "expected 1…\(count), got \(requested)") }
            guard requested - 1 > current else {
                throw Invalid(option: "--stage", reason: "the rollout is at stage \(current + 1) of \(count) already; advance goes forward")
            }
            return requested - 1
        }
        guard current + 1 < count else { throw Invalid(option: "--stage", reason: "the rollout is at its last stage (\(count) of \(count))") }
        return current + 1
    }

    /// The commands of `status` that await signatures: the plan (1) while the rollout awaits
    /// approval, and every pending control — none once the rollout is over.
    static func awaiting(_ status: RolloutStatus) -> [(sequence: Int64, kind: String)] {
        guard !isTerminal(status) else { return [] }
        var found: [Int64: String] = [:]
        if status.mode == RolloutView.Mode.awaitingApproval.rawValue { found[1] = RolloutPlan.commandKind }
        for pending in status.pending where found[pending.sequence] == nil { found[pending.sequence] = pending.kind }
        return found.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The sequence `approve` co-signs: `--sequence`, else the one command awaiting signatures.
    /// With several awaiting, the admin must say which: signing the wrong one could start a
    /// rollout another admin meant to cancel.
    static func approvalSequence(requested: Int64?, status: RolloutStatus) throws(Invalid) -> Int64 {
        if let requested {
            guard requested >= 1 else { throw Invalid(option: "--sequence", reason: "sequences start at 1 (the plan)") }
            return requested
        }
        let waiting = awaiting(status)
        if waiting.count == 1 { return waiting[0].sequence }
        if waiting.count > 1 {
            let listed = waiting.map { "#\($0.sequence) \(commandName($0.kind))" }.joined(separator: ", ")
            throw Invalid(
                option: "--sequence", reason: "\(waiting.count) commands of \(status.id) await approval (\(listed)): say which one to sign with --sequence N")
        }
        if isTerminal(status) { throw Invalid(option: "approve", reason: "rollout \(status.id) is \(modeText(status)): it is over, nothing to approve") }
        throw Invalid(
            option: "--sequence",
            reason: "nothing of rollout \(status.id) awaits approval (\(approvals(status))); give --sequence N to co-sign a command anyway")
    }

    /// Refuses signing the plan of a rollout that is over (an aborted plan stays aborted).
    static func checkApprovable(_ sequence: Int64, status: RolloutStatus) throws(Invalid) {
        guard isTerminal(status) else { return }
        throw Invalid(option: "approve", reason: "rollout \(status.id) is \(modeText(status)): it is over; signing #\(sequence) would change nothing")
    }

    /// Refuses a control for a rollout that is over.
    static func checkOpen(_ status: RolloutStatus, for control: String) throws(Invalid) {
        guard isTerminal(status) else { return }
        throw Invalid(option: control, reason: "rollout \(status.id) is \(modeText(status)): it is over; start a new rollout (otamesh rollout start) instead")
    }

    static func isTerminal(_ status: RolloutStatus) -> Bool {
        status.mode == RolloutView.Mode.aborted.rawValue || status.completion != nil
    }

    /// `the plan`, `abort`, `retry-failed`: a command kind as an admin names it.
    static func commandName(_ kind: String) -> String {
        if kind == RolloutPlan.commandKind { return "the plan" }
        return RolloutControl.Kind(commandKind: kind)?.rawValue ?? kind
    }

    /// What a control does once it carries enough signatures.
    static func meaning(_ kind: RolloutControl.Kind) -> String {
        switch kind {
        case .pause: "no new device update starts until a resume"
        case .resume: "device updates start again"
        case .abort: "the rollout stops for good (also one never approved)"
        case .advance: "the stage advances now, without soak or success rules"
        case .retryFailed: "failures so far are forgiven and failed devices are offered the image again"
        }
    }

    // MARK: Rendering

    /// `[#####!>>.......]`: succeeded `#`, failed `!`, in flight `>`, the rest of the targeted
    /// devices `.`; cells rounded cumulatively so the parts always fill exactly `width`.
    static func progressBar(succeeded: Int, failed: Int, inFlight: Int, targeted: Int, width: Int = 20) -> String {
        guard width > 0 else { return "[]" }
        let total = max(targeted, succeeded + failed + inFlight)
        guard total > 0 else { return "[" + String(repeating: ".", count: width) + "]" }
        func cells(_ count: Int) -> Int { min(width, Int((Double(count) * Double(width) / Double(total)).rounded())) }
        let s = cells(succeeded)
        let f = cells(succeeded + failed) - s
        let i = cells(succeeded + failed + inFlight) - s - f
        return "[" + String(repeating: "#", count: s) + String(repeating: "!", count: f) + String(repeating: ">", count: i)
            + String(repeating: ".", count: width - s - f - i) + "]"
    }

    /// `600` → `10m`, `5400` → `90m`, `7200` → `2h`, `45` → `45s`.
    static func durationText(_ seconds: Int64) -> String {
        if seconds > 0, seconds % 86_400 == 0 { return "\(seconds / 86_400)d" }
        if seconds > 0, seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds > 0, seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    /// Milliseconds since the epoch as `2025-11-23T18:00:00Z`.
    static func time(milliseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    static func approvals(_ status: RolloutStatus) -> String { "approvals \(status.approvals) of \(status.threshold)" }

    /// `mode`, or `completed with N failed` for a rollout that ended with failures.
    static func modeText(_ status: RolloutStatus) -> String {
        if let completion = status.completion, completion.failed > 0 { return "completed with \(completion.failed) failed" }
        return status.mode
    }

    /// The hint for one command that still needs signatures, naming it and its sequence, so the
    /// admin who follows it signs exactly that command. Nil when it needs none.
    static func approvalHint(_ status: RolloutStatus, sequence: Int64) -> String? {
        guard let entry = awaiting(status).first(where: { $0.sequence == sequence }) else { return nil }
        let problem = status.pending.first { $0.sequence == sequence }?.problem ?? status.planProblem
        return "\(commandName(entry.kind)) #\(sequence) awaits approval\(problem.map { " (\($0))" } ?? ""): another admin co-signs it with "
            + "`otamesh rollout approve \(status.id) --sequence \(sequence)`"
    }

    /// The hints for every command that still needs signatures.
    static func awaitingHints(_ status: RolloutStatus) -> [String] {
        awaiting(status).compactMap { approvalHint(status, sequence: $0.sequence) }
    }

    /// What a halted rollout's admins can do next.
    static func haltedNextStep(_ status: RolloutStatus) -> String? {
        guard status.mode == RolloutView.Mode.halted.rawValue else { return nil }
        let signatures = status.threshold == 1 ? "1 admin signature" : "\(status.threshold) admin signatures"
        return
            "next: `otamesh rollout retry-failed \(status.id)` forgives the \(status.failed) failure\(status.failed == 1 ? "" : "s") and offers the image again, "
            + "or `otamesh rollout resume \(status.id)` continues without forgiving them (it halts again while they pass the threshold); "
            + "`otamesh rollout abort \(status.id)` ends it. Each needs \(signatures)."
    }

    /// Terminal-safe text of at most `limit` characters (``Output/printable(_:)``), for device-
    /// or peer-supplied strings in a table.
    static func printable(_ text: String, limit: Int = 160) -> String {
        var head = String.UnicodeScalarView()
        head.append(contentsOf: text.unicodeScalars.prefix(limit))
        return Output.printable(String(head))
    }

    /// One rollout in full: plan, mode, approvals, stages (with bars when `bars`), gateways,
    /// halt, controls and pending commands.
    static func status(_ status: RolloutStatus, bars: Bool) -> String {
        var lines: [String] = []
        let stageCount = status.plan?.stages.count ?? status.stages.count
        var head = "\(status.id)  \(modeText(status))"
        if stageCount > 0 {
            let percent = status.plan.flatMap { $0.stages.isEmpty ? nil : $0.stages[max(0, min(status.stage, $0.stages.count - 1))] }
            head += "  stage \(status.stage + 1)/\(stageCount)" + (percent.map { " (\($0)%)" } ?? "")
        }
        if let since = status.stageSince { head += " since \(time(milliseconds: since))" }
        lines.append(head)
        if let plan = status.plan ?? status.proposed {
            if status.plan == nil { lines.append("  proposed  (not valid yet: \(status.planProblem ?? "awaiting approval"))") }
            let target = plan.target
            lines.append(
                "  target    \(target.path)" + (target.version.map { "  version \($0)" } ?? "") + (target.hardware.map { "  hardware \($0)" } ?? "")
                    + "  sha256 \(target.sha256.prefix(16))…  \(target.length) bytes")
            lines.append("  devices   \(plan.select.isEmpty ? "all devices" : plan.select)")
            var failures: [String] = []
            if let percent = plan.maxFailurePercent { failures.append("\(percent)%") }
            if let count = plan.maxFailures { failures.append("\(count)") }
            lines.append(
                "  rules     stages \(plan.stages.map { "\($0)%" }.joined(separator: ",")), soak \(durationText(plan.soak)), success \(plan.success)%, "
                    + "max failures \(failures.isEmpty ? "none" : failures.joined(separator: " or ")) after \(plan.minFinished) finished, "
                    + "concurrency \(plan.concurrency), device timeout \(durationText(plan.deviceTimeout))" + (plan.window.map { ", window \($0) UTC" } ?? "")
                    + (plan.configuration == true ? ", with each device's configuration (success: new version and configuration reported)" : ""))
        } else {
            lines.append("  plan      none usable" + (status.planProblem.map { ": \($0)" } ?? ""))
        }
        lines.append("  \(approvals(status))" + (status.planProblem.map { status.plan == nil ? "" : "  (\($0))" } ?? ""))
        if let signers = status.planSigners, !signers.isEmpty {
            lines.append(
                "  signed    the plan by \(signers.map(\.label).joined(separator: ", "))" + (status.planAuthor.map { " (written by \($0.label))" } ?? "")
                    + (status.planIssued.map { ", issued \(time(milliseconds: $0 * 1000))" } ?? ""))
        }
        if let completion = status.completion {
            lines.append(
                "  completed at \(time(milliseconds: completion.at)) (seen by \(completion.gateway)): \(completion.succeeded) succeeded, \(completion.failed) failed"
            )
        }
        lines.append("  finished  \(status.finished) (\(status.finished - status.failed) succeeded, \(status.failed) failed)")
        if let superseded = status.superseded {
            lines.append(
                "  superseded \(superseded.devices) device(s) on this gateway are governed by newer \(superseded.by.joined(separator: ", ")): "
                    + "this rollout starts none of them; abort it (otamesh rollout abort \(status.id) --key FILE) if it is no longer wanted")
        }
        if let halt = status.halt {
            lines.append("  halted    by \(halt.gateway) at \(time(milliseconds: halt.at)): \(printable(halt.reason, limit: 300))")
            if let next = haltedNextStep(status) { lines.append("  \(next)") }
        }
        if !status.stages.isEmpty {
            var rows = [["STAGE", "PERCENT", "TARGETED", "SUCCEEDED", "FAILED", "IN FLIGHT"]]
            for (index, stage) in status.stages.enumerated() {
                rows.append([
                    "\(index + 1)\(index == status.stage ? " *" : "")", "\(stage.percent)%", "\(stage.targeted)", "\(stage.succeeded)",
                    "\(stage.failed)", "\(stage.inFlight)",
                ])
            }
            let bar: (Int) -> String? = { row in
                guard bars, row > 0 else { return nil }
                let stage = status.stages[row - 1]
                return progressBar(succeeded: stage.succeeded, failed: stage.failed, inFlight: stage.inFlight, targeted: stage.targeted)
            }
            lines += table(rows, indent: "  ", trailing: bar)
        }
        if !status.gateways.isEmpty {
            var rows = [["GATEWAY", "TARGETED", "SUCCEEDED", "FAILED", "IN FLIGHT"]]
            for name in status.gateways.keys.sorted() {
                let gateway = status.gateways[name]!
                rows.append([name, "\(gateway.targeted)", "\(gateway.succeeded)", "\(gateway.failed)", "\(gateway.inFlight)"])
            }
            lines += table(rows, indent: "  ")
        }
        for control in status.controls.sorted(by: { $0.sequence < $1.sequence }) {
            lines.append(
                "  control   #\(control.sequence) \(control.kind)" + (control.stage.map { " to stage \($0 + 1)" } ?? "")
                    + " issued \(time(milliseconds: control.issued * 1000))"
                    + (control.signers.map { $0.isEmpty ? "" : " by \($0.map(\.label).joined(separator: ", "))" } ?? ""))
        }
        for pending in status.pending.sorted(by: { $0.sequence < $1.sequence }) {
            lines.append(
                "  pending   #\(pending.sequence) \(commandName(pending.kind))" + (pending.stage.map { " to stage \($0 + 1)" } ?? "")
                    + ": \(pending.problem)"
                    + (pending.signers.map {
                        $0.isEmpty
                            ? "" : " (signed by \($0.map { RolloutStatus.Signer(keyID: $0, name: status.adminNames?[$0]).label }.joined(separator: ", ")))"
                    } ?? ""))
        }
        for hint in awaitingHints(status) { lines.append("  \(hint)") }
        return lines.joined(separator: "\n")
    }

    /// Rollouts by the time their plan was issued (oldest first), then id.
    static func byStart(_ statuses: [RolloutStatus]) -> [RolloutStatus] {
        statuses.sorted { ($0.planIssued ?? .max, $0.id) < ($1.planIssued ?? .max, $1.id) }
    }

    /// `rollout list`: one line per rollout, oldest first (id, mode, target, stage k/n,
    /// succeeded/failed, when it was issued and by whom).
    static func list(_ statuses: [RolloutStatus]) -> String {
        guard !statuses.isEmpty else { return "no rollouts" }
        var rows = [["ID", "MODE", "TARGET", "STAGE", "SUCCEEDED", "FAILED", "STARTED", "AUTHOR"]]
        for status in byStart(statuses) {
            let count = status.plan?.stages.count ?? status.stages.count
            rows.append([
                status.id, modeText(status), (status.plan ?? status.proposed)?.target.path ?? "-", count > 0 ? "\(status.stage + 1)/\(count)" : "-",
                "\(status.finished - status.failed)", "\(status.failed)", status.planIssued.map { time(milliseconds: $0 * 1000) } ?? "-",
                (status.planAuthor ?? status.planSigners?.first).map(\.label) ?? "-",
            ])
        }
        return table(rows, indent: "").joined(separator: "\n")
    }

    /// `rollout status --devices`: each device's attempt, the oldest start first.
    static func devices(_ status: RolloutStatus) -> String {
        guard let outcomes = status.outcomes, !outcomes.isEmpty else { return "  no device attempts yet" }
        var rows = [["DEVICE", "GATEWAY", "PHASE", "STARTED", "UPDATED", "DETAIL"]]
        for outcome in outcomes.sorted(by: { ($0.started, $0.device) < ($1.started, $1.device) }) {
            rows.append([
                printable(outcome.device, limit: 64), printable(outcome.gateway, limit: 64), outcome.phase, time(milliseconds: outcome.started),
                time(milliseconds: outcome.updated), printable(outcome.detail),
            ])
        }
        return table(rows, indent: "  ").joined(separator: "\n")
    }

    /// `rollout start --dry-run`: what the plan would select, per stage and gateway, and why
    /// devices are left out.
    static func preview(_ preview: RolloutPreview, plan: RolloutPlan) -> String {
        var lines = [
            "dry run: \(plan.target.path)\(plan.target.version.map { " (version \($0))" } ?? "") for \(plan.selector) — nothing was signed or sent",
            "  \(preview.matching) of \(preview.devices) known devices match"
                + (preview.alreadyCurrent > 0 ? ", \(preview.alreadyCurrent) already run the target" : "")
                + (preview.inferredHardware > 0 ? ", \(preview.inferredHardware) by hardware inferred from the image they run" : ""),
        ]
        var rows = [["STAGE", "PERCENT", "DEVICES"]]
        for (index, percent) in plan.stages.enumerated() {
            rows.append(["\(index + 1)", "\(percent)%", preview.perStage.indices.contains(index) ? "\(preview.perStage[index])" : "?"])
        }
        lines += table(rows, indent: "  ")
        if !preview.gateways.isEmpty {
            var gateways = [["GATEWAY"] + plan.stages.indices.map { "STAGE \($0 + 1)" }]
            for name in preview.gateways.keys.sorted() { gateways.append([printable(name, limit: 64)] + preview.gateways[name]!.map(String.init)) }
            lines += table(gateways, indent: "  ")
        }
        for (key, count) in preview.leftOut.sorted(by: { $0.key < $1.key }) { lines.append("  left out  \(count) without \(key)") }
        for warning in preview.warnings { lines.append("warning: \(warning)") }
        return lines.joined(separator: "\n")
    }

    /// Columns padded to their widest cell (the last column unpadded), plus an optional
    /// trailing text per row (by row index, the header being 0).
    static func table(_ rows: [[String]], indent: String, trailing: (Int) -> String? = { _ in nil }) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.enumerated().map { index, row in
            let extra = trailing(index)
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 && extra == nil ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            return indent + cells.joined(separator: "  ") + (extra.map { "  \($0)" } ?? "")
        }
    }
}
