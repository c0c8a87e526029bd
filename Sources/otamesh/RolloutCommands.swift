import ArgumentParser
import Foundation
import OTAMeshGateway
import OTAMeshRollout
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
import OTAMeshCommon
#endif

/// `otamesh rollout …`: staged firmware rollouts through a gateway's admin API. Plans and
/// controls are signed here with an admin key (m-of-n: other admins `approve`); the gateway
/// only relays them into the mesh, where every gateway verifies them against the site trust.
struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Start, approve, steer and watch staged firmware rollouts (signed with a site admin key).",
        discussion: """
            The admin key (a PEM private key from `otamesh keys generate`) comes from --key FILE, else $OTAMESH_ADMIN_KEY \
            (the PEM text), else $OTAMESH_ADMIN_KEY_FILE. The admin API token: --token-file FILE, else $OTAMESH_TOKEN, \
            else DATA/keys/admin.token (--data-dir / --config).
            """,
        subcommands: [
            Start.self, Approve.self, Pause.self, Resume.self, Abort.self, RetryFailed.self, Advance.self, Halt.self, Status.self, List.self,
        ])

    static func run<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        try await reporting("otamesh rollout \(what)", body)
    }

    /// Seconds since the Unix epoch, the `issued` of new commands.
    static func now() -> Int64 { WallClock.system.now().wholeSeconds }

    static func decodeStatus(_ client: AdminClient, _ bytes: [UInt8], what: String) throws -> RolloutStatus {
        try client.decode(RolloutStatus.self, bytes, what: what)
    }

    /// The site and a check that `signer` is one of its admin keys (the gateway would refuse
    /// the command anyway; this names the key).
    static func site(_ client: AdminClient, signer: TUFSigner, keySource: String) async throws -> SiteInfo {
        try await site(client, signer: signer, keySource: keySource, check: true)
    }

    /// The site; with `check`, also that the signer (if any) is one of its admins.
    static func site(_ client: AdminClient, signer: TUFSigner?, keySource: String, check: Bool) async throws -> SiteInfo {
        let site = try await client.get(SiteInfo.self, "site")
        guard check, let signer else { return site }
        let keyID = signer.publicKey.computedKeyID
        guard site.admins.contains(keyID) else {
            throw RolloutText.Invalid(
                option: "admin key", reason: "\(keySource) (key id \(keyID.prefix(16))…) is not one of the \(site.admins.count) admin keys of site \(site.site)"
            )
        }
        return site
    }

    /// The status line after a command: mode, approvals, and what still waits — about the
    /// command just sent (`sequence`), never another one.
    static func report(_ status: RolloutStatus, sequence: Int64?) {
        Output.out("  mode \(RolloutText.modeText(status)), \(RolloutText.approvals(status))")
        if let sequence, let hint = RolloutText.approvalHint(status, sequence: sequence) { Output.out("  \(hint)") }
    }

    // MARK: start

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a rollout: a signed plan for one trusted target, staged over the selected devices.",
            discussion: """
                Example: otamesh rollout start --key alice.pem --target esp32/app/2.1.0.bin --select hardware=esp32,tag=floor2 \
                --stages 1,10,50,100 --soak 10m --success 95% --max-failures 5% --max-failures 3 --min-finished 5 --concurrency 4
                """)
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Option(help: "Target path as the gateway's trusted metadata lists it (otamesh images).") var target: String
        @Option(help: "Devices: key=value terms, comma-separated (hardware, variant, tag, gateway), or 'all'.") var select: String
        @Option(help: "Cumulative percentages of the selected devices per stage.") var stages = "1,10,50,100"
        @Option(help: "How long each stage must run before the next may start: 30s, 10m, 1h.") var soak = "10m"
        @Option(help: "Share of a stage's devices that must have succeeded before it advances, e.g. 95%.") var success = "95%"
        @Option(help: "Halt above this many failures: 5% of finished devices, or a count like 3; give it twice for both (default 5%).")
        var maxFailures: [String] = []
        @Option(help: "Failure limits apply once this many devices finished.") var minFinished = 5
        @Option(help: "Device updates each gateway drives at once.") var concurrency = 4
        @Option(help: "From the first offer until a device must run the new version: 30m, 2h.") var deviceTimeout = "30m"
        @Option(help: "Daily UTC window HH:MM-HH:MM in which new device updates may start, e.g. 22:00-04:00.") var window: String?
        @Flag(help: "Devices first seen after a stage began still join it (default: each stage's device set is fixed when it starts).")
        var dynamic = false
        @Flag(
            help:
                "The target is an app version (otamesh apps): devices succeed once they run it and their filesystem holds their configuration; configurations go stage by stage (httpUpdate devices)."
        )
        var configuration = false
        @Flag(help: "Show what the plan would select (per stage and gateway, devices left out, warnings); sign and send nothing.")
        var dryRun = false
        @Flag(help: "Print the new rollout's status (with --dry-run: the preview) as JSON.") var json = false

        var options: RolloutText.StartOptions {
            RolloutText.StartOptions(
                target: target, select: select, stages: stages, soak: soak, success: success, maxFailures: maxFailures,
                minFinished: minFinished, concurrency: concurrency, deviceTimeout: deviceTimeout, window: window, dynamic: dynamic,
                configuration: configuration)
        }

        func run() async throws {
            try await RolloutCommand.run("start") {
                let options = self.options
                // Every option is checked before the gateway is asked anything.
                let id = RolloutText.newID()
                _ = try options.plan(id: id, target: RolloutTarget(path: target, sha256: String(repeating: "0", count: 64), length: 1))
                if dryRun { return try await preview(id: id) }
                let (signer, keySource) = try signing.sendingSigner()
                let client = try api.client(key: signing.key)
                let site = try await RolloutCommand.site(client, signer: signer, keySource: keySource, check: signing.checksAdmin)
                let targets = try await client.get([TargetInfo].self, "targets")
                let info = try RolloutText.target(target, in: targets)
                if configuration, info.app == nil {
                    throw RolloutText.Invalid(
                        option: "--configuration", reason: "\(info.path) is no app version (otamesh apps lists them, with their firmware targets)")
                }
                let plan = try options.plan(
                    id: id, target: RolloutTarget(path: info.path, sha256: info.sha256, length: info.length, version: info.version, hardware: info.hardware))
                if let warning = RolloutText.hardwareWarning(plan: plan) { Output.err(warning) }
                var authored = plan
                authored.author = signer?.publicKey.computedKeyID
                var command = authored.command(site: site.site, issued: RolloutCommand.now())
                if let signer { try command.sign(with: signer) }
                let bytes = try await client.post("rollouts", body: command.bytes)
                if json {
                    Output.out(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                    return
                }
                let status = try RolloutCommand.decodeStatus(client, bytes, what: "POST /api/v1/rollouts")
                Output.out(
                    "rollout \(id): \(plan.target.path)\(plan.target.version.map { " (version \($0))" } ?? "")\(plan.configuration ? " with each device's configuration" : "") for \(plan.selector), "
                        + "stages \(plan.stages.map { "\($0)%" }.joined(separator: ","))")
                RolloutCommand.report(status, sequence: 1)
            }
        }

        /// `--dry-run`: the gateway's preview of the plan; nothing is signed or sent.
        func preview(id: String) async throws {
            let client = try api.client(key: signing.key)
            let targets = try await client.get([TargetInfo].self, "targets")
            let info = try RolloutText.target(target, in: targets)
            let plan = try options.plan(
                id: id, target: RolloutTarget(path: info.path, sha256: info.sha256, length: info.length, version: info.version, hardware: info.hardware))
            let bytes = try await client.post("rollouts/preview", body: plan.json.compactBytes)
            if json {
                Output.out(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                return
            }
            let preview = try client.decode(RolloutPreview.self, bytes, what: "POST /api/v1/rollouts/preview")
            Output.out(RolloutText.preview(preview, plan: plan))
        }
    }

    // MARK: approve

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add this admin's signature to a rollout's plan or control (m-of-n approval).",
            discussion:
                "Default: the plan while it awaits approval, else the highest pending command. Example: otamesh rollout approve r-0123456789ab --key bob.pem")
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id (r- and 12 hex digits).") var id: String
        @Option(help: "The command's sequence number (1 = the plan).") var sequence: Int64?

        func run() async throws {
            try await RolloutCommand.run("approve") {
                try RolloutText.checkID(id)
                let (signer, keySource) = try signing.signer()
                let client = try api.client(key: signing.key)
                let site = try await RolloutCommand.site(client, signer: signer, keySource: keySource)
                let status = try await client.get(RolloutStatus.self, "rollouts/\(id)")
                let number = try RolloutText.approvalSequence(requested: sequence, status: status)
                try RolloutText.checkApprovable(number, status: status)
                let file = "rollout \(id) command #\(number)"
                var command = try SignedCommand(bytes: try await client.get("rollouts/\(id)/commands/\(number)"), file: file)
                guard command.sequence == number, command.site == site.site else {
                    throw RolloutText.Invalid(option: "approve", reason: "\(file): the gateway sent #\(command.sequence) of site \(command.site)")
                }
                let keyID = signer.publicKey.computedKeyID
                guard !command.signatures.contains(where: { $0.keyID == keyID }) else {
                    throw RolloutText.Invalid(
                        option: "approve", reason: "\(file) is signed by this key (\(keySource)) already: another admin key must approve it")
                }
                Output.out("signing \(RolloutText.commandName(command.kind)) #\(number) of \(id): \(Self.describe(command))")
                try command.sign(with: signer)
                let after = try RolloutCommand.decodeStatus(
                    client, try await client.post("rollouts/\(id)/commands", body: command.bytes),
                    what: "POST /api/v1/rollouts/\(id)/commands")
                Output.out("rollout \(id): \(command.kind) #\(number) now has \(command.signatures.count) signature(s)")
                RolloutCommand.report(after, sequence: number)
            }
        }

        /// What the admin is about to sign, in one line.
        static func describe(_ command: SignedCommand) -> String {
            if command.kind == RolloutPlan.commandKind, let plan = try? RolloutPlan(json: command.payload) {
                return "\(plan.target.path)\(plan.target.version.map { " (version \($0))" } ?? "") sha256 \(plan.target.sha256.prefix(16))… "
                    + "for \(plan.selector), stages \(plan.stages.map { "\($0)%" }.joined(separator: ","))"
            }
            if let control = try? RolloutControl(command: command) {
                return control.kind.rawValue + (control.stage.map { " to stage \($0 + 1)" } ?? "") + " — " + RolloutText.meaning(control.kind)
            }
            return String(decoding: command.payload.canonicalBytes, as: UTF8.self)
        }
    }

    // MARK: controls

    struct Pause: AsyncParsableCommand, ControlCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a rollout: no new device updates start (in-flight ones finish).")
        static let kind = RolloutControl.Kind.pause
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id.") var id: String
        func run() async throws { try await send(stage: nil) }
    }

    struct Resume: AsyncParsableCommand, ControlCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused or halted rollout.")
        static let kind = RolloutControl.Kind.resume
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id.") var id: String
        func run() async throws { try await send(stage: nil) }
    }

    struct Abort: AsyncParsableCommand, ControlCommand {
        static let configuration = CommandConfiguration(abstract: "Abort a rollout for good: no device is offered its image any more.")
        static let kind = RolloutControl.Kind.abort
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id.") var id: String
        func run() async throws { try await send(stage: nil) }
    }

    struct RetryFailed: AsyncParsableCommand, ControlCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry-failed", abstract: "Forgive the failures so far and offer the image to the failed devices again.")
        static let kind = RolloutControl.Kind.retryFailed
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id.") var id: String
        func run() async throws { try await send(stage: nil) }
    }

    struct Advance: AsyncParsableCommand, ControlCommand {
        static let configuration = CommandConfiguration(abstract: "Advance a rollout to a later stage now, without waiting for its soak and success rules.")
        static let kind = RolloutControl.Kind.advance
        @OptionGroup var api: AdminOptions
        @OptionGroup var signing: SigningKeyOptions
        @Argument(help: "Rollout id.") var id: String
        @Option(help: "The stage to advance to, 1-based (default: the one after the current).") var stage: Int?
        func run() async throws { try await send(stage: stage) }
    }

    // MARK: halt

    struct Halt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Halt a rollout at once through any gateway (admin token, no signing key); `resume` continues it.",
            discussion: "Example: otamesh rollout halt r-0123456789ab --reason 'boot loops on floor 2'")
        @OptionGroup var api: AdminOptions
        @OptionGroup var adminKey: AdminKeyOption
        @Argument(help: "Rollout id.") var id: String
        @Option(help: "Why (shown in every gateway's status).") var reason = "halted by an operator (otamesh rollout halt)"

        func run() async throws {
            try await RolloutCommand.run("halt") {
                try RolloutText.checkID(id)
                let text = reason.trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { throw RolloutText.Invalid(option: "--reason", reason: "empty") }
                let client = try api.client(key: adminKey.key)
                let body = try JSONEncoder().encode(["reason": text])
                let bytes = try await client.post("rollouts/\(id)/halt", body: Array(body))
                Output.out("rollout \(id): halted (\(text))")
                if let status = try? JSONDecoder().decode(RolloutStatus.self, from: Data(bytes)) {
                    Output.out("  mode \(status.mode); `otamesh rollout resume \(id)` continues it")
                }
            }
        }
    }

    // MARK: status, list

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a rollout (or all): mode, approvals, progress per stage and gateway, halt, pending commands.",
            discussion: "Example: otamesh rollout status r-0123456789ab --watch")
        @OptionGroup var api: AdminOptions
        @OptionGroup var adminKey: AdminKeyOption
        @Argument(help: "Rollout id (default: every rollout).") var id: String?
        @Flag(help: "Print the RolloutStatus JSON.") var json = false
        @Flag(help: "List each device's attempt: gateway, phase, start, last change, why it failed.") var devices = false
        @Flag(help: "Refresh until the rollout completes or is aborted (Ctrl-C stops).") var watch = false
        @Option(help: "Time between refreshes with --watch: 1s, 5s.") var interval = "2s"

        func run() async throws {
            try await RolloutCommand.run("status") {
                if let id { try RolloutText.checkID(id) }
                let pause = try RolloutText.duration(interval, option: "--interval")
                guard pause >= 1 else { throw RolloutText.Invalid(option: "--interval", reason: "at least 1s") }
                let client = try api.client(key: adminKey.key)
                let terminal = isatty(STDOUT_FILENO) != 0
                var last = ""
                while true {
                    let (text, done) = try await render(client, bars: terminal)
                    if !watch {
                        Output.out(text)
                        return
                    }
                    if terminal {
                        Output.out("\u{1B}[H\u{1B}[2J" + text)
                    } else if text != last {
                        Output.out(text)
                    }
                    last = text
                    if done { return }
                    try await Task.sleep(for: .seconds(pause))
                }
            }
        }

        /// The text to show, and whether watching may stop (the rollout completed or was aborted).
        func render(_ client: AdminClient, bars: Bool) async throws -> (String, Bool) {
            if let id {
                let bytes = try await client.get("rollouts/\(id)" + (devices ? "?outcomes=1" : ""))
                let status = try RolloutCommand.decodeStatus(client, bytes, what: "GET /api/v1/rollouts/\(id)")
                let done = status.mode == RolloutView.Mode.completed.rawValue || status.mode == RolloutView.Mode.aborted.rawValue
                if json { return (String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), done) }
                return (RolloutText.status(status, bars: bars) + (devices ? "\n" + RolloutText.devices(status) : ""), done)
            }
            let bytes = try await client.get("rollouts" + (devices ? "?outcomes=1" : ""))
            let list = try client.decode(RolloutList.self, bytes, what: "GET /api/v1/rollouts")
            if json { return (String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), false) }
            guard !list.rollouts.isEmpty else { return ("no rollouts", false) }
            return (
                RolloutText.byStart(list.rollouts).map { RolloutText.status($0, bars: bars) + (devices ? "\n" + RolloutText.devices($0) : "") }
                    .joined(separator: "\n\n"), false
            )
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per rollout, oldest first: id, mode, target, stage, succeeded and failed devices, start time and author.")
        @OptionGroup var api: AdminOptions
        @OptionGroup var adminKey: AdminKeyOption
        @Flag(help: "Print the {\"rollouts\": [RolloutStatus]} JSON.") var json = false

        func run() async throws {
            try await RolloutCommand.run("list") {
                let client = try api.client(key: adminKey.key)
                let bytes = try await client.get("rollouts")
                let list = try client.decode(RolloutList.self, bytes, what: "GET /api/v1/rollouts")
                Output.out(json ? String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : RolloutText.list(list.rollouts))
            }
        }
    }
}

/// `GET /api/v1/rollouts`.
struct RolloutList: Codable {
    var rollouts: [RolloutStatus]
}

/// pause, resume, abort, retry-failed and advance: the next sequence after the highest the
/// gateway has seen, signed, sent to `/commands`.
protocol ControlCommand {
    static var kind: RolloutControl.Kind { get }
    var api: AdminOptions { get }
    var signing: SigningKeyOptions { get }
    var id: String { get }
}

extension ControlCommand {
    func send(stage requested: Int?) async throws {
        let kind = Self.kind
        try await RolloutCommand.run(kind.rawValue) {
            try RolloutText.checkID(id)
            let (signer, keySource) = try signing.sendingSigner()
            let client = try api.client(key: signing.key)
            let site = try await RolloutCommand.site(client, signer: signer, keySource: keySource, check: signing.checksAdmin)
            let status = try await client.get(RolloutStatus.self, "rollouts/\(id)")
            try RolloutText.checkOpen(status, for: kind.rawValue)
            let stage =
                kind == .advance
                ? try RolloutText.advanceStage(requested: requested, current: status.stage, count: status.plan?.stages.count ?? status.stages.count)
                : nil
            let sequence = status.lastSequence + 1
            let control = RolloutControl(rollout: id, sequence: sequence, kind: kind, stage: stage, issued: RolloutCommand.now())
            var command = control.command(site: site.site)
            if let signer { try command.sign(with: signer) }
            let after = try RolloutCommand.decodeStatus(
                client, try await client.post("rollouts/\(id)/commands", body: command.bytes),
                what: "POST /api/v1/rollouts/\(id)/commands")
            Output.out("rollout \(id): \(kind.rawValue)\(stage.map { " to stage \($0 + 1)" } ?? "") sent as #\(sequence)")
            RolloutCommand.report(after, sequence: sequence)
        }
    }
}

/// Where the admin signing key comes from: `--key FILE`, else `$OTAMESH_ADMIN_KEY` (the PEM
/// text), else `$OTAMESH_ADMIN_KEY_FILE`. Never the key itself as an argument.
struct SigningKeyOptions: ParsableArguments {
    @Option(help: "Admin private key file (PEM, from `otamesh keys generate`; default: $OTAMESH_ADMIN_KEY with the PEM text, else $OTAMESH_ADMIN_KEY_FILE).")
    var key: String?

    /// For the lab's refusal checks (start and controls only): send the command without any
    /// signature, so the gateway's own refusal is what is seen.
    @Flag(name: .customLong("unsigned"), help: ArgumentHelp(visibility: .hidden))
    var unsigned = false

    /// For the lab's refusal checks: sign with a key outside the site trust and let the gateway
    /// refuse it (instead of this CLI naming the key first).
    @Flag(name: .customLong("skip-admin-check"), help: ArgumentHelp(visibility: .hidden))
    var skipAdminCheck = false

    @Flag(help: "Accept a key file that group or others can read.")
    var insecurePermissions = false

    /// Whether the CLI checks the key against the site's admins before sending.
    var checksAdmin: Bool { !unsigned && !skipAdminCheck }

    /// The signer for a new command: none with `--unsigned`.
    func sendingSigner() throws -> (TUFSigner?, String) {
        if unsigned { return (nil, "no key (--unsigned)") }
        let (signer, source) = try signer()
        return (signer, source)
    }

    /// The signer and where it came from (a file name or variable name, for messages).
    func signer() throws -> (TUFSigner, String) {
        let found = try SigningKeyLookup.resolve(keyFile: key, environment: ProcessInfo.processInfo.environment) { [insecurePermissions] path in
            try PrivateFile.check(path, allowOpen: insecurePermissions)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw RolloutText.Invalid(option: "admin key", reason: "cannot read \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
        return (try KeyFile.parse(pem: found.pem, file: found.source), found.source)
    }
}

enum SigningKeyLookup {
    struct Found: Equatable {
        let pem: String
        let source: String
    }

    static let missing = RolloutText.Invalid(
        option: "admin key",
        reason:
            "none given: use --key FILE (a PEM private key from `otamesh keys generate`), or set OTAMESH_ADMIN_KEY to the PEM text or OTAMESH_ADMIN_KEY_FILE to its file"
    )

    static func resolve(keyFile: String?, environment: [String: String], read: (String) throws -> String) throws -> Found {
        if let keyFile { return Found(pem: try read(keyFile), source: keyFile) }
        if let pem = environment["OTAMESH_ADMIN_KEY"], !pem.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            guard pem.contains("-----BEGIN") else {
                throw RolloutText.Invalid(option: "OTAMESH_ADMIN_KEY", reason: "holds no PEM text (for a file name use OTAMESH_ADMIN_KEY_FILE)")
            }
            return Found(pem: pem, source: "$OTAMESH_ADMIN_KEY")
        }
        if let path = environment["OTAMESH_ADMIN_KEY_FILE"], !path.isEmpty { return Found(pem: try read(path), source: path) }
        throw missing
    }
}
