import OTAMeshTrust

/// One device's configuration for one app version: the values an admin set (non-secret ones
/// here; password values only as the names of the properties that have one, the values live
/// in the gateway's secret store).
public struct DeviceSettings: Sendable, Equatable {
    /// `name@version` of the app version the values were checked against.
    public var app: String
    public var values: [String: SettingValue]
    /// Password properties with a value in the secret store.
    public var secrets: Set<String>
    /// The device's address when its settings were made (or as the admin gave it): a
    /// configuration image holding a password is served only to a request from there.
    public var address: String?
    /// When an admin set them (Unix seconds): of a device's settings on several gateways of the
    /// site, the newest count.
    public var at: Int64?

    public init(app: String, values: [String: SettingValue] = [:], secrets: Set<String> = [], address: String? = nil, at: Int64? = nil) {
        self.app = app
        self.values = values
        self.secrets = secrets
        self.address = address
        self.at = at
    }

    /// Whether these settings were set after `other` (none: yes).
    public func isNewer(than other: DeviceSettings?) -> Bool {
        guard let other else { return true }
        return (at ?? 0) > (other.at ?? 0)
    }

    /// What the registry stores: canonical JSON `{"app": …, "secrets": [...], "values": {...}}`
    /// — never a password.
    public var stored: String {
        var values = JSONObject()
        for (prop, value) in self.values { values[prop] = value.json }
        var object = JSONObject()
        object["app"] = .string(app)
        object["values"] = .object(values)
        object["secrets"] = .array(secrets.sorted().map { .string($0) })
        if let address { object["address"] = .string(address) }
        if let at { object["at"] = .integer(at) }
        return String(decoding: JSONValue.object(object).canonicalBytes, as: UTF8.self)
    }

    /// From the registry's stored text; nil when there is none or it is not ours.
    public init?(stored: String?) {
        guard let stored, let value = try? JSONValue.parse(Array(stored.utf8)), let app = value["app"]?.stringValue,
            let values = value["values"]?.objectValue
        else { return nil }
        var typed: [String: SettingValue] = [:]
        for (prop, item) in values.members {
            guard let setting = SettingValue(json: item) else { return nil }
            typed[prop] = setting
        }
        self.init(
            app: app, values: typed, secrets: Set((value["secrets"]?.arrayValue ?? []).compactMap(\.stringValue)), address: value["address"]?.stringValue,
            at: value["at"]?.integerValue)
    }

    /// Every value the configuration file gets: set values, then defaults. Secrets excluded.
    public func effective(_ release: AppRelease) -> [String: SettingValue] {
        var all: [String: SettingValue] = [:]
        for property in release.properties where !property.isSecret {
            if let value = values[property.prop] ?? property.defaultValue { all[property.prop] = value }
        }
        return all
    }

    /// Required properties with neither a value nor a default: the image cannot be built yet.
    public func missing(_ release: AppRelease) -> [String] {
        release.properties.filter { property in
            property.required && values[property.prop] == nil && !secrets.contains(property.prop) && property.defaultValue == nil
        }.map(\.prop)
    }
}

/// A settings change: `prop=value` assignments and props to unset, checked against an app
/// version all at once. Pure.
public enum SettingsChange {
    /// What a successful change gives: the new settings, and the password values to store
    /// (prop → value; an empty map when none was set).
    public struct Outcome: Sendable, Equatable {
        public var settings: DeviceSettings
        public var secrets: [String: String]
        public var removedSecrets: [String]
    }

    /// Every problem of a change; the change is refused whole when there is one.
    public struct Problems: Error, Sendable, Equatable, CustomStringConvertible {
        public var problems: [SettingProblem]
        public init(problems: [SettingProblem]) { self.problems = problems }
        public var description: String {
            problems.count == 1
                ? problems[0].description : "\(problems.count) problems, nothing changed:\n  " + problems.map(\.description).joined(separator: "\n  ")
        }
    }

    /// Parses `prop=value` words (the value may contain `=`; an empty value is an empty text):
    /// the assignments, and a problem for each word that is none.
    public static func assignments(_ words: [String]) -> (parsed: [(prop: String, text: String)], problems: [SettingProblem]) {
        var parsed: [(prop: String, text: String)] = []
        var problems: [SettingProblem] = []
        for word in words {
            guard let equals = word.firstIndex(of: "="), equals != word.startIndex else {
                problems.append(SettingProblem(prop: SettingValue.text(String(word.prefix(64))).shown, reason: "not prop=value"))
                continue
            }
            parsed.append((String(word[..<equals]), String(word[word.index(after: equals)...])))
        }
        return (parsed, problems)
    }

    /// Applies `assignments` and `unset` to `current` (kept only when it is for the same app
    /// version: settings for another version are checked anew against `release`).
    public static func apply(
        _ assignments: [(prop: String, text: String)], unset: [String] = [], to current: DeviceSettings?, release: AppRelease
    ) -> Result<Outcome, Problems> {
        var settings = DeviceSettings(app: release.reference, address: current?.address)
        var problems: [SettingProblem] = []
        if let current {
            // Values carried over from another app version must still be valid for this one.
            for (prop, value) in current.values {
                guard let property = release.property(prop), !property.isSecret else { continue }
                if case .success(let checked) = property.check(value) { settings.values[prop] = checked }
            }
            settings.secrets = current.secrets.filter { release.property($0)?.isSecret == true }
        }
        var secrets: [String: String] = [:]
        var seen: Set<String> = []
        let known = release.properties.map(\.prop).joined(separator: ", ")
        for (prop, text) in assignments {
            guard seen.insert(prop).inserted else {
                problems.append(SettingProblem(prop: prop, reason: "given twice"))
                continue
            }
            guard let property = release.property(prop) else {
                problems.append(SettingProblem(prop: prop, reason: "no such property in \(release.reference) (\(known.isEmpty ? "it has none" : known))"))
                continue
            }
            switch property.value(from: text) {
            case .failure(let problem): problems.append(problem)
            case .success(let value):
                if property.isSecret, case .text(let secret) = value {
                    secrets[prop] = secret
                    settings.secrets.insert(prop)
                } else {
                    settings.values[prop] = value
                }
            }
        }
        var removed: [String] = []
        for prop in unset {
            guard let property = release.property(prop) else {
                problems.append(SettingProblem(prop: prop, reason: "no such property in \(release.reference)"))
                continue
            }
            if seen.contains(prop) { problems.append(SettingProblem(prop: prop, reason: "both set and unset")) }
            settings.values[prop] = nil
            if property.isSecret, settings.secrets.remove(prop) != nil { removed.append(prop) }
        }
        guard problems.isEmpty else { return .failure(Problems(problems: problems)) }
        return .success(Outcome(settings: settings, secrets: secrets, removedSecrets: removed))
    }
}
