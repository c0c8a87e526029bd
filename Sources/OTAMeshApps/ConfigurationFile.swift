import OTAMeshCommon

/// The configuration file an app reads at boot, made from a device's settings: the bytes that
/// go into its filesystem image at ``ConfigLocation/path``. Deterministic: the same settings
/// give the same bytes. Pure.
public enum ConfigurationFile {
    /// `settings`' effective values (set, else default) plus the password values in `secrets`.
    /// With `configID`, the file also carries `config-id` (``ConfigurationImage/idKey``).
    public static func bytes(_ release: AppRelease, settings: DeviceSettings, secrets: [String: String], configID: String? = nil) -> [UInt8] {
        var all = settings.effective(release)
        for property in release.properties where property.isSecret {
            if let secret = secrets[property.prop] { all[property.prop] = .text(secret) }
        }
        if let configID { all[ConfigurationImage.idKey] = .text(configID) }
        switch release.config.format {
        case .json:
            var object = JSONObjectBuilder()
            for prop in all.keys.sorted() { object.add(prop, all[prop]!) }
            return Array((object.text + "\n").utf8)
        case .keyValue:
            return Array(all.keys.sorted().map { "\($0)=\(all[$0]!.plain)\n" }.joined().utf8)
        }
    }

    /// One JSON object, keys in the order added, strings escaped as RFC 8259 requires.
    struct JSONObjectBuilder {
        var members: [String] = []
        mutating func add(_ key: String, _ value: SettingValue) {
            let encoded: String
            switch value {
            case .text(let text): encoded = Self.quoted(text)
            case .number(let number): encoded = String(number)
            case .boolean(let flag): encoded = flag ? "true" : "false"
            }
            members.append("\(Self.quoted(key)):\(encoded)")
        }
        var text: String { "{" + members.joined(separator: ",") + "}" }

        static func quoted(_ text: String) -> String { jsonQuoted(text) }
    }
}
