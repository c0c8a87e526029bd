import OTAMeshFirmware
import OTAMeshTrust

/// The apps of a release: every signed firmware target that carries `custom.app`, grouped by
/// device type (`hardware`) and app name, versions newest first. Pure: built from the targets of
/// metadata already verified. An entry that cannot be read is kept as a problem, never dropped
/// silently and never fatal to the others.
public struct AppCatalog: Sendable, Equatable {
    /// One app of one device type, its versions newest first.
    public struct App: Sendable, Equatable {
        public var hardware: String
        public var name: String
        public var description: String
        public var versions: [AppRelease]
    }

    public private(set) var apps: [App] = []
    public private(set) var problems: [AppSpecError] = []

    public init(targets: [TargetFile]) {
        var releases: [AppRelease] = []
        for target in targets.sorted(by: { $0.path < $1.path }) {
            guard let app = target.custom?["app"] else { continue }
            let hardware = target.custom?["hardware"]?.stringValue ?? ""
            let version = target.custom?["version"]?.stringValue ?? ""
            guard !hardware.isEmpty, !version.isEmpty else {
                problems.append(
                    AppSpecError(source: target.path, field: "", reason: "an app target needs its hardware and version (otamesh release add records them)"))
                continue
            }
            do {
                releases.append(try AppRelease(app: app, firmware: target.path, hardware: hardware, version: version, source: target.path))
            } catch {
                problems.append(error)
            }
        }
        var groups: [String: App] = [:]
        for release in releases {
            let key = release.hardware + "\u{0}" + release.name
            var app = groups[key] ?? App(hardware: release.hardware, name: release.name, description: "", versions: [])
            if app.versions.contains(where: { $0.version == release.version }) {
                problems.append(
                    AppSpecError(
                        source: release.firmware, field: "",
                        reason: "\(release.reference) for \(release.hardware) is also \(app.versions.first { $0.version == release.version }?.firmware ?? "")"))
                continue
            }
            app.versions.append(release)
            groups[key] = app
        }
        apps = groups.values.map { app in
            var app = app
            app.versions.sort { Self.newer($0.version, than: $1.version) }
            app.description = app.versions.first(where: { !$0.description.isEmpty })?.description ?? ""
            return app
        }
        .sorted { ($0.hardware, $0.name) < ($1.hardware, $1.name) }
    }

    /// Every app version, device type by device type.
    public var releases: [AppRelease] { apps.flatMap(\.versions) }

    /// The app version `reference` names (`name@version`; `name` alone: its newest version), for
    /// `hardware` when given. Nil when none, or when `name` alone is ambiguous across device types.
    public func release(_ reference: String, hardware: String? = nil) -> AppRelease? {
        let parts = reference.split(separator: "@", maxSplits: 1).map(String.init)
        let candidates = apps.filter { $0.name == parts[0] && (hardware == nil || $0.hardware == hardware) }
        guard candidates.count == 1, let app = candidates.first else { return nil }
        return parts.count == 2 ? app.versions.first { $0.version == parts[1] } : app.versions.first
    }

    /// ``release(_:hardware:)`` for the device type `hardware` when it has the app, else for
    /// any device type (a device that reports no chip, or another one than the catalog names).
    public func release(_ reference: String, preferring hardware: String?) -> AppRelease? {
        release(reference, hardware: hardware) ?? release(reference)
    }

    /// Version `version` of the app called `name` (for `hardware` when known; the ESP32
    /// httpUpdate core does not say its chip): nil when none, or when several device types
    /// have it and `hardware` does not tell them apart.
    public func release(named name: String, version: String, hardware: String?) -> AppRelease? {
        let matches = apps.filter { $0.name == name && (hardware == nil || $0.hardware == hardware) }.compactMap { app in
            app.versions.first { $0.version == version }
        }
        return matches.count == 1 ? matches.first : nil
    }

    /// The app version whose firmware a device of `hardware` runs when it reports `version`.
    public func release(hardware: String, runningVersion version: String) -> AppRelease? {
        let matches = releases.filter { $0.hardware == hardware && $0.version == version }
        return matches.count == 1 ? matches.first : nil
    }

    /// Whether version `a` sorts before `b` newest-first: semantic versions by precedence, others
    /// (and mixed) by text, so the order is total and stable.
    static func newer(_ a: String, than b: String) -> Bool {
        if let x = SemanticVersion(a), let y = SemanticVersion(b), x != y { return x > y }
        return a > b
    }
}
