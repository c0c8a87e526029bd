import Foundation
import OTAMeshGateway
import OTAMeshRollout
import OTAMeshTrust
import Testing

@testable import otamesh

/// `otamesh rollout`'s pure parts: option text into a signed plan request, and statuses into text.
@Suite("rollout CLI")
struct RolloutCLITests {
    static let sha = String(repeating: "ab", count: 32)

    static func targets() throws -> [TargetInfo] {
        try JSONDecoder().decode(
            [TargetInfo].self,
            from: Data(
                """
                [{"path": "esp32/app/2.1.0.bin", "sha256": "\(sha)", "length": 1234567, "version": "2.1.0", "hardware": "esp32", "cached": true},
                 {"path": "w800/app.img", "sha256": "\(String(repeating: "cd", count: 32))", "length": 99, "cached": false}]
                """.utf8))
    }

    static func target(_ info: TargetInfo) -> RolloutTarget {
        RolloutTarget(path: info.path, sha256: info.sha256, length: info.length, version: info.version, hardware: info.hardware)
    }

    @Test("durations: 30s, 10m, 1h, bare seconds; anything else names the option and the value")
    func durations() throws {
        #expect(try RolloutText.duration("30s", option: "--soak") == 30)
        #expect(try RolloutText.duration("10m", option: "--soak") == 600)
        #expect(try RolloutText.duration("1h", option: "--soak") == 3600)
        #expect(try RolloutText.duration("2d", option: "--soak") == 172_800)
        #expect(try RolloutText.duration("90", option: "--soak") == 90)
        #expect(try RolloutText.duration("0s", option: "--soak") == 0)
        for bad in ["10x", "1.5h", "", "m", "-5m", "10 minutes"] {
            #expect(throws: RolloutText.Invalid(option: "--soak", reason: "expected a duration like 30s, 10m or 1h, got '\(bad)'")) {
                try RolloutText.duration(bad, option: "--soak")
            }
        }
    }

    @Test("percentages: 95% or 95, within 0…100")
    func percentages() throws {
        #expect(try RolloutText.percent("95%", option: "--success") == 95)
        #expect(try RolloutText.percent("95", option: "--success") == 95)
        #expect(try RolloutText.percent("0%", option: "--success") == 0)
        #expect(try RolloutText.percent("100%", option: "--success") == 100)
        for bad in ["101%", "-1%", "%", "ninety", "9 5%", "95%%", "٩٥"] {
            #expect(throws: RolloutText.Invalid.self, "\(bad)") { try RolloutText.percent(bad, option: "--success") }
        }
        #expect(throws: RolloutText.Invalid(option: "--success", reason: "expected a percentage 0%…100% like 95%, got '101%'")) {
            try RolloutText.percent("101%", option: "--success")
        }
    }

    @Test("stages: cumulative percentages that rise within 1…100")
    func stages() throws {
        #expect(try RolloutText.stages("1,10,50,100") == [1, 10, 50, 100])
        #expect(try RolloutText.stages("5%, 25%,100%") == [5, 25, 100])
        #expect(try RolloutText.stages("100") == [100])
        #expect(throws: RolloutText.Invalid(option: "--stages", reason: "stages are cumulative and must rise: 5% after 10% (in '1,10,5')")) {
            try RolloutText.stages("1,10,5")
        }
        for bad in ["", "1,,10", "0,50", "1,10,150", "a,b", "10,10"] {
            #expect(throws: RolloutText.Invalid.self, "\(bad)") { try RolloutText.stages(bad) }
        }
    }

    @Test("--max-failures: a % value is the share, otherwise a count; each form at most once; default 5%")
    func maxFailures() throws {
        #expect(try RolloutText.maxFailures([]) == (5, nil))
        #expect(try RolloutText.maxFailures(["10%"]) == (10, nil))
        #expect(try RolloutText.maxFailures(["3"]) == (nil, 3))
        #expect(try RolloutText.maxFailures(["5%", "3"]) == (5, 3))
        #expect(try RolloutText.maxFailures(["3", "5%"]) == (5, 3))
        #expect(try RolloutText.maxFailures(["0"]) == (nil, 0))
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.maxFailures(["3", "4"]) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.maxFailures(["5%", "6%"]) }
        #expect(throws: RolloutText.Invalid(option: "--max-failures", reason: "expected a count like 3 or a percentage like 5%, got 'many'")) {
            try RolloutText.maxFailures(["many"])
        }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.maxFailures(["-2"]) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.maxFailures(["120%"]) }
    }

    @Test("rollout start: the command line parses into the plan it signs")
    func startOptionsIntoPlan() throws {
        let command = try RolloutCommand.Start.parse([
            "--target", "esp32/app/2.1.0.bin", "--select", "hardware=esp32,tag=floor2", "--stages", "1,10,50,100", "--soak", "10m",
            "--success", "95%", "--max-failures", "5%", "--max-failures", "3", "--min-finished", "5", "--concurrency", "4",
            "--device-timeout", "45m", "--window", "22:00-04:00", "--key", "alice.pem", "--token-file", "t", "--admin", "http://127.0.0.1:9",
        ])
        let options = command.options
        #expect(
            options
                == RolloutText.StartOptions(
                    target: "esp32/app/2.1.0.bin", select: "hardware=esp32,tag=floor2", stages: "1,10,50,100",
                    soak: "10m", success: "95%", maxFailures: ["5%", "3"], minFinished: 5, concurrency: 4,
                    deviceTimeout: "45m", window: "22:00-04:00"))
        #expect(command.signing.key == "alice.pem" && command.api.tokenFile == "t" && command.api.admin == "http://127.0.0.1:9")
        let info = try RolloutText.target("esp32/app/2.1.0.bin", in: try Self.targets())
        let plan = try options.plan(id: "r-0123456789ab", target: Self.target(info))
        let expected = RolloutPlan(
            id: "r-0123456789ab",
            target: RolloutTarget(path: "esp32/app/2.1.0.bin", sha256: Self.sha, length: 1234567, version: "2.1.0", hardware: "esp32"),
            selector: try DeviceSelector(parsing: "hardware=esp32,tag=floor2"), stages: [1, 10, 50, 100], soakSeconds: 600, successPercent: 95,
            maxFailurePercent: 5, maxFailures: 3, minFinished: 5, concurrency: 4, deviceTimeoutSeconds: 2700,
            window: try MaintenanceWindow(parsing: "22:00-04:00"))
        #expect(plan == expected)
        #expect(RolloutText.hardwareWarning(plan: plan) == nil)

        // Defaults: stages 1,10,50,100, soak 10m, success 95%, 5% failures, 5 finished, concurrency 4, timeout 30m, no window.
        let defaults = try RolloutCommand.Start.parse(["--target", "w800/app.img", "--select", "all"]).options
        let plain = try defaults.plan(id: "r-00000000000f", target: Self.target(try RolloutText.target("w800/app.img", in: try Self.targets())))
        #expect(plain.selector == DeviceSelector() && plain.stages == [1, 10, 50, 100] && plain.soakSeconds == 600 && plain.successPercent == 95)
        #expect(plain.maxFailurePercent == 5 && plain.maxFailures == nil && plain.minFinished == 5 && plain.concurrency == 4)
        #expect(plain.deviceTimeoutSeconds == 1800 && plain.window == nil)

        // --target and --select are required.
        #expect(throws: (any Error).self) { try RolloutCommand.Start.parse(["--select", "all"]) }
        #expect(throws: (any Error).self) { try RolloutCommand.Start.parse(["--target", "x"]) }
    }

    @Test("rollout start: each bad option is named")
    func startOptionErrors() throws {
        let target = RolloutTarget(path: "p", sha256: Self.sha, length: 1)
        func failure(_ change: (inout RolloutText.StartOptions) -> Void) -> String {
            var options = RolloutText.StartOptions(target: "p", select: "hardware=esp32")
            change(&options)
            do {
                _ = try options.plan(id: "r-0123456789ab", target: target)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure { $0.select = "" }.hasPrefix("--select: empty"))
        #expect(failure { $0.select = "colour=red" }.hasPrefix("--select: device selector 'colour=red': unknown key 'colour'"))
        #expect(failure { $0.stages = "50,10" }.hasPrefix("--stages: "))
        #expect(failure { $0.soak = "soon" } == "--soak: expected a duration like 30s, 10m or 1h, got 'soon'")
        #expect(failure { $0.success = "95 percent" }.hasPrefix("--success: "))
        #expect(failure { $0.maxFailures = ["1", "2"] }.hasPrefix("--max-failures: a count given twice"))
        #expect(failure { $0.concurrency = 0 } == "--concurrency: expected 1…1000, got 0")
        #expect(failure { $0.minFinished = -1 }.hasPrefix("--min-finished: "))
        #expect(failure { $0.deviceTimeout = "0s" } == "--device-timeout: must be above zero")
        #expect(failure { $0.window = "late" }.contains("window: 'late' is not HH:MM-HH:MM (UTC)"))
        #expect(failure { _ in } == "accepted")
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.target("esp32/app/9.bin", in: try Self.targets()) }
        do {
            _ = try RolloutText.target("esp32/app/9.bin", in: try Self.targets())
        } catch {
            #expect(
                "\(error)"
                    == "--target: 'esp32/app/9.bin' is not a trusted target on this gateway (known: esp32/app/2.1.0.bin, w800/app.img; see otamesh images)")
        }
        let mismatch = try RolloutText.StartOptions(target: "p", select: "hardware=esp8266")
            .plan(id: "r-0123456789ab", target: RolloutTarget(path: "p", sha256: Self.sha, length: 1, hardware: "esp32"))
        #expect(RolloutText.hardwareWarning(plan: mismatch) == "warning: p is for hardware esp32, the selector picks esp8266")
    }

    @Test("the plan command is sequence 1 of kind rollout.plan, round-trips, and verifies once the threshold of admins signed")
    func planCommand() throws {
        let options = RolloutText.StartOptions(target: "esp32/app/2.1.0.bin", select: "tag=floor2", maxFailures: ["3"])
        let plan = try options.plan(id: RolloutText.newID(), target: RolloutTarget(path: "esp32/app/2.1.0.bin", sha256: Self.sha, length: 10))
        let alice = try KeyFile.generate(.ed25519)
        let bob = try KeyFile.generate(.ecdsa)
        let trust = try SiteTrust(site: "hq", threshold: 2, admins: [alice.publicKey, bob.publicKey])
        var command = plan.command(site: "hq", issued: 1_700_000_000)
        try command.sign(with: alice)
        #expect(command.kind == "rollout.plan" && command.sequence == 1 && command.site == "hq")
        #expect(try RolloutPlan(json: command.payload) == plan)
        #expect(throws: TrustError.self) { try command.verify(trust: trust, lastSequence: nil) }
        // Approval: another admin's signature on the same envelope, as `rollout approve` adds it.
        var copy = try SignedCommand(bytes: command.bytes, file: "envelope")
        try copy.sign(with: bob)
        try copy.verify(trust: trust, lastSequence: nil)
        #expect(RolloutCommand.Approve.describe(copy).hasPrefix("esp32/app/2.1.0.bin sha256 abababababababab… for tag=floor2, stages 1%,10%,50%,100%"))

        // A control: the next sequence, its stage 0-based on the wire.
        let control = RolloutControl(rollout: plan.id, sequence: 2, kind: .advance, stage: 2, issued: 1_700_000_100).command(site: "hq")
        #expect(control.kind == "rollout.advance" && control.payload["stage"]?.integerValue == 2 && control.payload["rollout"]?.stringValue == plan.id)
        #expect(RolloutCommand.Approve.describe(control) == "advance to stage 3 — the stage advances now, without soak or success rules")
    }

    @Test("rollout ids: r- and 12 lower-case hex digits, fresh each time")
    func ids() throws {
        let ids = (0..<50).map { _ in RolloutText.newID() }
        #expect(ids.allSatisfy(RolloutText.isValidID) && Set(ids).count == 50)
        for bad in ["r-0123456789AB", "r-0123456789a", "x-0123456789ab", "r-0123456789abc", "r-01234567890g"] {
            #expect(!RolloutText.isValidID(bad), "\(bad)")
        }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.checkID("latest") }
    }

    @Test("advance --stage is 1-based on the command line, 0-based on the wire, forward only")
    func advanceStage() throws {
        #expect(try RolloutText.advanceStage(requested: nil, current: 0, count: 4) == 1)
        #expect(try RolloutText.advanceStage(requested: 4, current: 0, count: 4) == 3)
        #expect(try RolloutText.advanceStage(requested: 3, current: 1, count: 4) == 2)
        #expect(throws: RolloutText.Invalid(option: "--stage", reason: "the rollout is at its last stage (4 of 4)")) {
            try RolloutText.advanceStage(requested: nil, current: 3, count: 4)
        }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.advanceStage(requested: 2, current: 1, count: 4) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.advanceStage(requested: 5, current: 0, count: 4) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.advanceStage(requested: 0, current: 0, count: 4) }
        let parsed = try RolloutCommand.Advance.parse(["r-0123456789ab", "--stage", "3"])
        #expect(parsed.id == "r-0123456789ab" && parsed.stage == 3)
    }

    @Test("approve: the one command awaiting signatures; with several, --sequence is required")
    func approvalSequence() throws {
        let awaiting = try Self.status(mode: "awaiting approval", approvals: 1, pending: "[]")
        #expect(try RolloutText.approvalSequence(requested: nil, status: awaiting) == 1)
        // The trap: an abort of a plan still awaiting approval. Approving "the rollout" must not
        // silently co-sign the plan the first admin tried to cancel.
        let abortPending = try Self.status(mode: "awaiting approval", approvals: 1, pending: Self.pendingAbort)
        #expect(
            throws: RolloutText.Invalid(
                option: "--sequence", reason: "2 commands of r-0123456789ab await approval (#1 the plan, #2 abort): say which one to sign with --sequence N")
        ) {
            try RolloutText.approvalSequence(requested: nil, status: abortPending)
        }
        #expect(try RolloutText.approvalSequence(requested: 2, status: abortPending) == 2)
        let aborted = try Self.status(mode: "aborted", pending: "[]")
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.approvalSequence(requested: nil, status: aborted) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.checkApprovable(1, status: aborted) }
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.checkOpen(aborted, for: "resume") }
        let running = try Self.status()
        #expect(try RolloutText.approvalSequence(requested: nil, status: running) == 4)
        #expect(try RolloutText.approvalSequence(requested: 2, status: running) == 2)
        let settled = try Self.status(pending: "[]")
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.approvalSequence(requested: nil, status: settled) }
    }

    @Test("progress bars: succeeded #, failed !, in flight >, the rest ., always the full width")
    func progressBars() {
        #expect(RolloutText.progressBar(succeeded: 0, failed: 0, inFlight: 0, targeted: 0) == "[" + String(repeating: ".", count: 20) + "]")
        #expect(RolloutText.progressBar(succeeded: 10, failed: 0, inFlight: 0, targeted: 10) == "[" + String(repeating: "#", count: 20) + "]")
        #expect(RolloutText.progressBar(succeeded: 5, failed: 1, inFlight: 2, targeted: 20) == "[#####!>>............]")
        #expect(RolloutText.progressBar(succeeded: 1, failed: 1, inFlight: 1, targeted: 4, width: 8) == "[##!!>>..]")
        #expect(RolloutText.progressBar(succeeded: 3, failed: 0, inFlight: 0, targeted: 0, width: 4) == "[####]", "more reported than targeted: full")
        #expect(RolloutText.progressBar(succeeded: 1, failed: 0, inFlight: 0, targeted: 1000, width: 10) == "[..........]")
        for (s, f, i, t) in [(1, 2, 3, 7), (33, 33, 33, 100), (0, 0, 1, 3), (99, 1, 0, 100)] {
            let bar = RolloutText.progressBar(succeeded: s, failed: f, inFlight: i, targeted: t, width: 17)
            #expect(bar.count == 19, "\(bar)")
        }
        #expect(
            RolloutText.durationText(600) == "10m" && RolloutText.durationText(7200) == "2h" && RolloutText.durationText(45) == "45s"
                && RolloutText.durationText(5400) == "90m" && RolloutText.durationText(86_400) == "1d" && RolloutText.durationText(0) == "0s")
    }

    /// A status as the admin API sends it.
    static func status(mode: String = "running", approvals: Int = 2, pending: String? = nil, halt: Bool = false) throws -> RolloutStatus {
        let pendingJSON =
            pending
            ?? #"[{"sequence": 4, "kind": "rollout.pause", "bodyHash": "x", "problem": "1 valid signature(s) from distinct site admin keys, 2 required"}]"#
        let haltJSON = halt ? #"{"epoch": 1, "at": 1700000000000, "gateway": "gw-b", "reason": "4 failures > 3"}"# : "null"
        return try JSONDecoder().decode(
            RolloutStatus.self,
            from: Data(
                """
                {"id": "r-0123456789ab", "mode": "\(mode)",
                 "plan": {"target": {"path": "esp32/app/2.1.0.bin", "sha256": "\(sha)", "length": 1234567, "version": "2.1.0", "hardware": "esp32"},
                          "select": "hardware=esp32,tag=floor2", "stages": [1, 10, 50, 100], "soak": 600, "success": 95, "maxFailurePercent": 5,
                          "maxFailures": 3, "minFinished": 5, "concurrency": 4, "deviceTimeout": 1800, "window": "22:00-04:00"},
                 "approvals": \(approvals), "threshold": 2, "stage": 1, "stageSince": 1700000000000,
                 "stages": [{"percent": 1, "targeted": 3, "succeeded": 3, "failed": 0, "inFlight": 0},
                            {"percent": 10, "targeted": 30, "succeeded": 12, "failed": 1, "inFlight": 4},
                            {"percent": 50, "targeted": 150, "succeeded": 12, "failed": 1, "inFlight": 4},
                            {"percent": 100, "targeted": 300, "succeeded": 12, "failed": 1, "inFlight": 4}],
                 "gateways": {"gw-b": {"targeted": 12, "succeeded": 5, "failed": 1, "inFlight": 2}, "gw-a": {"targeted": 18, "succeeded": 7, "failed": 0, "inFlight": 2}},
                 "halt": \(haltJSON),
                 "controls": [{"sequence": 2, "kind": "pause", "issued": 1700000100}, {"sequence": 3, "kind": "resume", "issued": 1700000200}],
                 "pending": \(pendingJSON), "lastSequence": 4, "finished": 16, "failed": 1}
                """.utf8))
    }

    @Test("rollout status: plan, mode, approvals, stages (bars only for a terminal), gateways, halt, controls, pending")
    func statusText() throws {
        let plain = RolloutText.status(try Self.status(halt: true), bars: false)
        let lines = plain.split(separator: "\n").map(String.init)
        #expect(lines[0] == "r-0123456789ab  running  stage 2/4 (10%) since 2023-11-14T22:13:20Z")
        #expect(lines[1] == "  target    esp32/app/2.1.0.bin  version 2.1.0  hardware esp32  sha256 abababababababab…  1234567 bytes")
        #expect(lines[2] == "  devices   hardware=esp32,tag=floor2")
        #expect(
            lines[3]
                == "  rules     stages 1%,10%,50%,100%, soak 10m, success 95%, max failures 5% or 3 after 5 finished, concurrency 4, device timeout 30m, window 22:00-04:00 UTC"
        )
        #expect(lines.contains("  approvals 2 of 2"))
        #expect(lines.contains("  finished  16 (15 succeeded, 1 failed)"))
        #expect(lines.contains("  halted    by gw-b at 2023-11-14T22:13:20Z: 4 failures > 3"))
        #expect(lines.contains("  STAGE  PERCENT  TARGETED  SUCCEEDED  FAILED  IN FLIGHT"))
        #expect(lines.contains("  2 *    10%      30        12         1       4"))
        #expect(lines.contains("  GATEWAY  TARGETED  SUCCEEDED  FAILED  IN FLIGHT"))
        #expect(lines.firstIndex(of: "  gw-a     18        7          0       2")! < lines.firstIndex(of: "  gw-b     12        5          1       2")!)
        #expect(lines.contains("  control   #2 pause issued 2023-11-14T22:15:00Z"))
        #expect(lines.contains("  pending   #4 pause: 1 valid signature(s) from distinct site admin keys, 2 required"))
        #expect(
            lines.contains(
                "  pause #4 awaits approval (1 valid signature(s) from distinct site admin keys, 2 required): another admin co-signs it with `otamesh rollout approve r-0123456789ab --sequence 4`"
            ))
        #expect(!plain.contains("[#") && !plain.contains("awaiting approval"))

        let terminal = RolloutText.status(try Self.status(), bars: true)
        #expect(terminal.contains("  2 *    10%      30        12         1       4          [########!>>.........]"), "\(terminal)")
        #expect(terminal.contains("  1      1%       3         3          0       0          [####################]"))

        let awaiting = RolloutText.status(try Self.status(mode: "awaiting approval", approvals: 1, pending: "[]"), bars: false)
        #expect(awaiting.contains("  approvals 1 of 2"))
        #expect(awaiting.hasSuffix("  the plan #1 awaits approval: another admin co-signs it with `otamesh rollout approve r-0123456789ab --sequence 1`"))
    }

    static let pendingAbort =
        #"[{"sequence": 2, "kind": "rollout.abort", "bodyHash": "y", "problem": "1 valid signature(s) from distinct site admin keys, 2 required", "signers": ["aaaa"]}]"#

    @Test("after an abort of a plan awaiting approval, the hint names the abort, never a bare approve")
    func abortHint() throws {
        let status = try Self.status(mode: "awaiting approval", approvals: 1, pending: Self.pendingAbort)
        let hint = try #require(RolloutText.approvalHint(status, sequence: 2))
        #expect(
            hint
                == "abort #2 awaits approval (1 valid signature(s) from distinct site admin keys, 2 required): another admin co-signs it with `otamesh rollout approve r-0123456789ab --sequence 2`"
        )
        let text = RolloutText.status(status, bars: false)
        #expect(!text.contains("rollout approve r-0123456789ab`"), "a hint without --sequence: \(text)")
        // Once aborted, no hint at all: nothing is left to approve.
        #expect(RolloutText.awaitingHints(try Self.status(mode: "aborted", pending: Self.pendingAbort)).isEmpty)
    }

    @Test("a halted rollout's status says the next step and how many signatures it needs")
    func haltedNextStep() throws {
        let text = RolloutText.status(try Self.status(mode: "halted", pending: "[]", halt: true), bars: false)
        #expect(
            text.contains(
                "next: `otamesh rollout retry-failed r-0123456789ab` forgives the 1 failure and offers the image again, or `otamesh rollout resume r-0123456789ab` continues without forgiving them"
            ))
        #expect(text.contains("Each needs 2 admin signatures."))
    }

    @Test("rollout status --devices: each attempt, device strings shown without terminal control sequences")
    func devicesText() throws {
        var status = try Self.status()
        status.outcomes = [
            RolloutStatus.Outcome(
                device: "dev\u{1b}[2J1", gateway: "gw-a", epoch: 1, phase: "failed", started: 1_700_000_000_000, updated: 1_700_000_060_000,
                detail: "device reported: \u{1b}]0;pwned\u{07}flash\nerror\u{9b}31m"),
            RolloutStatus.Outcome(
                device: "dev-2", gateway: "gw-b", epoch: 1, phase: "succeeded", started: 1_699_999_000_000, updated: 1_700_000_000_000, detail: "2.1.0"),
        ]
        let text = RolloutText.devices(status)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x9b })
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "an LF in a device string must not forge a line")
        #expect(lines[0].hasPrefix("  DEVICE"))
        #expect(lines[1].hasPrefix("  dev-2") && lines[1].contains("succeeded"))
        #expect(lines[2].contains("dev\\u{1b}[2J1") && lines[2].contains("failed") && lines[2].contains("2023-11-14T22:14:20Z"))
    }

    @Test("completed with failures says so; the completion is shown")
    func completedText() throws {
        var status = try Self.status(mode: "completed", pending: "[]")
        status.completion = RolloutStatus.Completion(at: 1_700_000_000_000, gateway: "gw-a", succeeded: 28, failed: 2)
        #expect(RolloutText.modeText(status) == "completed with 2 failed")
        let text = RolloutText.status(status, bars: false)
        #expect(text.hasPrefix("r-0123456789ab  completed with 2 failed"))
        #expect(text.contains("  completed at 2023-11-14T22:13:20Z (seen by gw-a): 28 succeeded, 2 failed"))
        #expect(throws: RolloutText.Invalid.self) { try RolloutText.checkOpen(status, for: "pause") }
    }

    @Test("rollout list: one line per rollout")
    func listText() throws {
        #expect(RolloutText.list([]) == "no rollouts")
        let text = RolloutText.list([try Self.status()])
        #expect(
            text == """
                ID              MODE     TARGET               STAGE  SUCCEEDED  FAILED  STARTED  AUTHOR
                r-0123456789ab  running  esp32/app/2.1.0.bin  2/4    15         1       -        -
                """)
        // Oldest plan first (not by id), with who signed it.
        var older = try Self.status()
        older.id = "r-ffffffffffff"
        older.planIssued = 1_600_000_000
        older.planSigners = [RolloutStatus.Signer(keyID: "0123456789abcdef0123", name: "alice")]
        var newer = try Self.status()
        newer.planIssued = 1_700_000_000
        let lines = RolloutText.list([newer, older]).split(separator: "\n")
        #expect(lines[1].hasPrefix("r-ffffffffffff") && lines[1].hasSuffix("2020-09-13T12:26:40Z  alice (01234567)"))
        #expect(lines[2].hasPrefix("r-0123456789ab"))
        let list = try JSONDecoder().decode(RolloutList.self, from: Data(#"{"rollouts": []}"#.utf8))
        #expect(list.rollouts.isEmpty)
    }

    @Test("admin API token: --token-file, then OTAMESH_TOKEN, then the first readable token file; never an argument value")
    func tokenLookup() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let admin = "\(dir)/admin.token"
        let read = "\(dir)/read.token"
        try Data("admin-token-0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: admin))
        try Data("read-token-0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: read))
        let both = { [admin, read] }
        #expect(
            try AdminTokenLookup.resolve(tokenFile: read, environment: ["OTAMESH_TOKEN": "env-token-0123456789abc"], candidates: both)
                == .init(token: "read-token-0123456789abcdef", source: read))
        #expect(
            try AdminTokenLookup.resolve(tokenFile: nil, environment: ["OTAMESH_TOKEN": " env-token-0123456789abc\n"], candidates: both)
                == .init(token: "env-token-0123456789abc", source: "OTAMESH_TOKEN"))
        #expect(try AdminTokenLookup.resolve(tokenFile: nil, environment: ["OTAMESH_TOKEN": ""], candidates: both).source == admin)
        #expect(try AdminTokenLookup.resolve(tokenFile: nil, environment: [:], candidates: { ["\(dir)/missing", read] }).source == read)
        #expect(throws: AdminTokenError.self) { try AdminTokenLookup.resolve(tokenFile: "\(dir)/missing", environment: [:], candidates: both) }
        do {
            _ = try AdminTokenLookup.resolve(tokenFile: nil, environment: [:], candidates: { ["\(dir)/a", "\(dir)/b"] })
            Issue.record("no token should be found")
        } catch {
            #expect("\(error)".hasPrefix("no admin API token: give --token-file FILE or set OTAMESH_TOKEN") && "\(error)".hasSuffix("\(dir)/a, \(dir)/b"))
        }
        // There is no option that takes the token itself.
        #expect(throws: (any Error).self) { try MembersCommand.parse(["--token", "admin-token-0123456789abcdef"]) }
    }

    @Test("admin signing key: --key, then OTAMESH_ADMIN_KEY (PEM text), then OTAMESH_ADMIN_KEY_FILE; a clear error without one")
    func signingKeyLookup() throws {
        let read: (String) throws -> String = { "PEM of \($0)" }
        #expect(
            try SigningKeyLookup.resolve(keyFile: "a.pem", environment: ["OTAMESH_ADMIN_KEY": "-----BEGIN x"], read: read)
                == .init(pem: "PEM of a.pem", source: "a.pem"))
        #expect(
            try SigningKeyLookup.resolve(keyFile: nil, environment: ["OTAMESH_ADMIN_KEY": "-----BEGIN x", "OTAMESH_ADMIN_KEY_FILE": "b.pem"], read: read)
                == .init(pem: "-----BEGIN x", source: "$OTAMESH_ADMIN_KEY"))
        #expect(
            try SigningKeyLookup.resolve(keyFile: nil, environment: ["OTAMESH_ADMIN_KEY_FILE": "b.pem"], read: read)
                == .init(pem: "PEM of b.pem", source: "b.pem"))
        #expect(throws: SigningKeyLookup.missing) { try SigningKeyLookup.resolve(keyFile: nil, environment: [:], read: read) }
        #expect(SigningKeyLookup.missing.description.contains("--key FILE") && SigningKeyLookup.missing.description.contains("OTAMESH_ADMIN_KEY_FILE"))
        #expect(throws: RolloutText.Invalid.self) { try SigningKeyLookup.resolve(keyFile: nil, environment: ["OTAMESH_ADMIN_KEY": "alice.pem"], read: read) }
        // The PEM a key file holds parses into the signer the commands use.
        let signer = try KeyFile.generate(.ed25519)
        let found = try SigningKeyLookup.resolve(keyFile: nil, environment: ["OTAMESH_ADMIN_KEY": KeyFile.pem(signer)], read: read)
        #expect(try KeyFile.parse(pem: found.pem, file: found.source).publicKey.computedKeyID == signer.publicKey.computedKeyID)
    }

    @Test("admin API errors carry the gateway's reason and a hint for 401")
    func apiErrors() {
        let unauthorized = AdminAPIError(method: "GET", path: "/api/v1/rollouts", status: 401, message: "unknown bearer token: …")
        #expect(
            unauthorized.description == "GET /api/v1/rollouts: HTTP 401: unknown bearer token: … (give the gateway's token: --token-file FILE or OTAMESH_TOKEN)"
        )
        let forbidden = AdminAPIError(method: "POST", path: "/api/v1/rollouts", status: 403, message: "plan: 1 valid signature(s), 2 required")
        #expect(forbidden.description == "POST /api/v1/rollouts: HTTP 403: plan: 1 valid signature(s), 2 required")
    }
}
