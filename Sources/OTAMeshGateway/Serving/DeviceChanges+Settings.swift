import OTAMeshApps
import OTAMeshCommon
import OTAMeshStore

extension DeviceChanges {
    /// `otamesh device config set|import`: every row checked against its app version first,
    /// then all written (password values to the secret store, the rest to the registry), or none.
    func configure(_ rows: [SettingsAssignment]) throws -> [String] {
        guard !rows.isEmpty else { throw DeviceChangeError(.invalid, "no device settings given") }
        let catalog = try apps()
        var planned: [(id: String, outcome: SettingsChange.Outcome, release: AppRelease)] = []
        var problems: [String] = []
        for row in rows {
            let id = try Self.normalized([row.id])[0]
            let record = registry.device(id)
            // The newest settings of the site: another gateway's when an admin changed them there later.
            let local = DeviceSettings(stored: record?.settings)
            let remote = siteSettings(id).flatMap { $0.settings.isNewer(than: local) ? $0.settings : nil }
            let current = remote ?? local
            let release: AppRelease
            switch Self.appVersion(for: row.app, device: record, current: current, catalog: catalog) {
            case .success(let found): release = found
            case .failure(let why):
                problems.append("\(id): \(why.reason)")
                continue
            }
            let (assignments, malformed) = SettingsChange.assignments(row.set)
            problems += malformed.map { "\(id): \($0)" }
            switch SettingsChange.apply(assignments, unset: row.unset, to: current, release: release) {
            case .success(var outcome):
                outcome.settings.at = clock.now().wholeSeconds
                if let address = row.address {
                    guard SiteCA.ipBytes(address) != nil else {
                        problems.append("\(id): --address \(address) is not an IP address")
                        continue
                    }
                    outcome.settings.address = address
                } else if outcome.settings.address == nil, let seen = record?.address, !seen.isEmpty {
                    outcome.settings.address = seen
                }
                planned.append((id, outcome, release))
            case .failure(let bad): problems += bad.problems.map { "\(id): \($0)" }
            }
        }
        guard problems.isEmpty else {
            throw DeviceChangeError(
                .invalid, "\(problems.count) bad value\(problems.count == 1 ? "" : "s"), nothing changed:\n  " + problems.joined(separator: "\n  "))
        }
        var lines: [String] = []
        func row(_ id: String) -> SettingsAssignment { rows.first { DeviceRegistry.normalizedID($0.id) == id } ?? SettingsAssignment(id: id, set: []) }
        for (id, outcome, release) in planned {
            try secrets.setSettingSecrets(id, set: outcome.secrets, remove: outcome.removedSecrets)
            try registry.setSettings(id, settings: outcome.settings.stored, at: now())
            var shown =
                outcome.settings.values.keys.sorted().map { "\($0)=\(outcome.settings.values[$0]!.shown)" }
                + outcome.secrets.keys.sorted().map { "\($0) set" } + outcome.removedSecrets.sorted().map { "\($0) removed" }
                + row(id).unset.filter { release.property($0)?.isSecret == false }.sorted().map { "\($0) cleared" }
            let missing = outcome.settings.missing(release)
            if !outcome.settings.secrets.isEmpty {
                shown.append(
                    outcome.settings.address.map { "images with a password only to \($0)" }
                        ?? "images with a password withheld: its address is not known yet (--address IP)")
            }
            lines.append(
                "\(id): \(release.reference): " + (shown.isEmpty ? "defaults" : shown.joined(separator: ", "))
                    + (missing.isEmpty ? "" : " (still missing: \(missing.joined(separator: ", ")) — required before its configuration image is built)"))
        }
        return lines
    }

    /// The app version a device's settings are checked against: the one named, else the one its
    /// settings were made for, else the one whose firmware it runs.
    static func appVersion(for named: String?, device: DeviceRecord?, current: DeviceSettings?, catalog: AppCatalog) -> Result<AppRelease, AppVersionUnknown> {
        if let named {
            guard let release = catalog.release(named, preferring: device?.hardware) else {
                return .failure(
                    AppVersionUnknown(reason: "no app \(named)\(device?.hardware.map { " for \($0)" } ?? "") in the trusted release (otamesh apps)"))
            }
            if let hardware = device?.hardware, hardware != release.hardware {
                return .failure(AppVersionUnknown(reason: "\(release.reference) is for \(release.hardware); the device reports \(hardware)"))
            }
            return .success(release)
        }
        if let current {
            guard let release = catalog.release(current.app, hardware: device?.hardware) else {
                return .failure(
                    AppVersionUnknown(
                        reason:
                            "its settings are for \(current.app), which the trusted release no longer has: name another with --app NAME@VERSION (otamesh apps)")
                )
            }
            return .success(release)
        }
        if let hardware = device?.hardware, let version = device?.version, let release = catalog.release(hardware: hardware, runningVersion: version) {
            return .success(release)
        }
        let runs =
            device.map { "it runs \($0.hardware ?? "unknown hardware") \($0.version ?? "unknown version"), which is no app version" }
            ?? "it is not known here yet"
        return .failure(AppVersionUnknown(reason: "\(runs): name its app with --app NAME@VERSION (otamesh apps)"))
    }
}

/// Why no app version can check a device's settings.
struct AppVersionUnknown: Error {
    let reason: String
}
