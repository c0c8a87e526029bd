import OTAMeshTrust

/// Why an app's catalog entry (a spec file, or `custom.app` of a signed target) is not usable:
/// where, which field, why — `weather.yaml: properties[2].default: 30 is above the maximum 21`.
public struct AppSpecError: Error, Sendable, Equatable, CustomStringConvertible {
    public let source: String
    public let field: String
    public let reason: String

    public init(source: String, field: String, reason: String) {
        self.source = source
        self.field = field
        self.reason = reason
    }

    public var description: String { field.isEmpty ? "\(source): \(reason)" : "\(source): \(field): \(reason)" }
}

extension AppRelease {
    /// The fields of `custom.app` (and of a spec file, which adds `firmware`).
    static let fields: Set<String> = ["name", "description", "properties", "config", "filesystem", "parts", "app-offset", "firmware"]
    static let propertyFields: Set<String> = ["prop", "label", "type", "default", "min", "max", "pattern", "choices", "required"]
    static let filesystemFields: Set<String> = [
        "type", "offset", "size", "page-size", "block-size", "obj-name-len", "name-max", "meta-len", "use-magic", "use-magic-len", "aligned-obj-ix-tables",
    ]

    /// Reads an app from `app` (the `custom.app` object of the firmware target `firmware`, whose
    /// own custom fields give `hardware` and `version`). Every field is checked; unknown fields
    /// are refused (a typo must not silently drop a constraint). Pure.
    public init(app: JSONValue, firmware: String, hardware: String, version: String, source: String) throws(AppSpecError) {
        let reader = FieldReader(source: source)
        guard let object = app.objectValue else { throw reader.error("", "not an object") }
        try reader.refuseUnknown(object, allowed: Self.fields, at: "")
        let name = try reader.string(object, "name", required: true) ?? ""
        guard AppProperty.isValidName(name) else {
            throw reader.error("name", "\(SettingValue.text(name).shown): letters, digits, '-', '_' and '.' only, at most 64")
        }
        let description = try reader.string(object, "description") ?? ""
        var properties: [AppProperty] = []
        for (index, item) in (try reader.array(object, "properties") ?? []).enumerated() {
            let property = try reader.property(item, at: "properties[\(index)]")
            if properties.contains(where: { $0.prop == property.prop }) {
                throw reader.error("properties[\(index)].prop", "\(property.prop) is declared twice")
            }
            properties.append(property)
        }
        var config = ConfigLocation()
        if let value = object["config"] {
            guard let location = value.objectValue else { throw reader.error("config", "not an object") }
            try reader.refuseUnknown(location, allowed: ["path", "format"], at: "config.")
            if let path = try reader.string(location, "path", at: "config.") {
                guard path.hasPrefix("/"), path.utf8.count <= 64, !path.hasSuffix("/"), !path.contains("//"),
                    !path.unicodeScalars.contains(where: { $0.value < 0x20 })
                else {
                    throw reader.error("config.path", "\(SettingValue.text(path).shown): an absolute file path inside the filesystem, at most 64 bytes")
                }
                config.path = path
            }
            if let format = try reader.string(location, "format", at: "config.") {
                guard let parsed = ConfigLocation.Format(rawValue: format) else {
                    throw reader.error("config.format", "\(SettingValue.text(format).shown): json or key-value")
                }
                config.format = parsed
            }
        }
        var filesystem: FilesystemSpec?
        if let value = object["filesystem"] { filesystem = try reader.filesystem(value) }
        var parts: [FlashPartSpec] = []
        for (index, item) in (try reader.array(object, "parts") ?? []).enumerated() {
            let at = "parts[\(index)]."
            guard let part = item.objectValue else { throw reader.error("parts[\(index)]", "not an object") }
            try reader.refuseUnknown(part, allowed: ["name", "target", "offset"], at: at)
            let target = try reader.string(part, "target", required: true, at: at) ?? ""
            let offset = try reader.integer(part, "offset", required: true, at: at, range: 0...(16 << 20)) ?? 0
            parts.append(FlashPartSpec(name: try reader.string(part, "name", at: at) ?? target, target: target, offset: offset))
        }
        let appOffset = try reader.integer(object, "app-offset", range: 0...(16 << 20)) ?? 0x10000
        if !properties.isEmpty, filesystem == nil {
            throw reader.error("filesystem", "the app declares properties but no filesystem to carry its configuration")
        }
        self.init(
            name: name, description: description, version: version, firmware: firmware, hardware: hardware, properties: properties,
            config: config, filesystem: filesystem, parts: parts, appOffset: appOffset)
    }

    /// The `custom.app` object, with integers for offsets and sizes. Reading it back gives an
    /// equal value.
    public var json: JSONValue {
        var object = JSONObject()
        object["name"] = .string(name)
        if !description.isEmpty { object["description"] = .string(description) }
        if !properties.isEmpty { object["properties"] = .array(properties.map(\.json)) }
        object["config"] = .object(["path": .string(config.path), "format": .string(config.format.rawValue)] as KeyValuePairs<String, JSONValue>)
        if let filesystem { object["filesystem"] = filesystem.json }
        if !parts.isEmpty {
            object["parts"] = .array(
                parts.map {
                    .object(["name": .string($0.name), "target": .string($0.target), "offset": .integer(Int64($0.offset))] as KeyValuePairs<String, JSONValue>)
                })
        }
        object["app-offset"] = .integer(Int64(appOffset))
        return .object(object)
    }
}

extension AppProperty {
    var json: JSONValue {
        var object = JSONObject()
        object["prop"] = .string(prop)
        object["label"] = .string(label)
        object["type"] = .string(kind.rawValue)
        if let defaultValue { object["default"] = defaultValue.json }
        if let min { object["min"] = .integer(min) }
        if let max { object["max"] = .integer(max) }
        if let pattern { object["pattern"] = .string(pattern) }
        if !choices.isEmpty { object["choices"] = .array(choices.map { .string($0) }) }
        if required { object["required"] = .bool(true) }
        return .object(object)
    }
}

extension FilesystemSpec {
    var json: JSONValue {
        var object = JSONObject()
        object["type"] = .string(kind.rawValue)
        object["offset"] = .integer(Int64(offset))
        object["size"] = .integer(Int64(size))
        object["block-size"] = .integer(Int64(blockSize))
        switch kind {
        case .spiffs:
            object["page-size"] = .integer(Int64(pageSize))
            object["obj-name-len"] = .integer(Int64(nameLength))
            object["meta-len"] = .integer(Int64(metaLength))
            object["use-magic"] = .bool(useMagic)
            object["use-magic-len"] = .bool(useMagicLength)
            object["aligned-obj-ix-tables"] = .bool(alignedObjectIndexTables)
        case .littlefs:
            object["name-max"] = .integer(Int64(nameLength))
        }
        return .object(object)
    }
}

/// Reads typed fields with errors that name them.
struct FieldReader {
    let source: String

    func error(_ field: String, _ reason: String) -> AppSpecError { AppSpecError(source: source, field: field, reason: reason) }

    func refuseUnknown(_ object: JSONObject, allowed: Set<String>, at prefix: String) throws(AppSpecError) {
        if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
            throw error(prefix + unknown, "not a field here (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ object: JSONObject, _ key: String, required: Bool = false, at prefix: String = "") throws(AppSpecError) -> String? {
        guard let value = object[key] else {
            if required { throw error(prefix + key, "missing") }
            return nil
        }
        guard let text = value.stringValue else { throw error(prefix + key, "not a string") }
        guard text.utf8.count <= 4096 else { throw error(prefix + key, "longer than 4096 bytes") }
        return text
    }

    func array(_ object: JSONObject, _ key: String) throws(AppSpecError) -> [JSONValue]? {
        guard let value = object[key] else { return nil }
        guard let items = value.arrayValue else { throw error(key, "not a list") }
        guard items.count <= 256 else { throw error(key, "\(items.count) entries, at most 256") }
        return items
    }

    /// An integer given as a number, or as a string in decimal or `0x` hex (App Fairy writes
    /// offsets as `"0x210000"`).
    func integer(_ object: JSONObject, _ key: String, required: Bool = false, at prefix: String = "", range: ClosedRange<Int>) throws(AppSpecError) -> Int? {
        guard let value = object[key] else {
            if required { throw error(prefix + key, "missing") }
            return nil
        }
        let number: Int?
        switch value {
        case .integer(let n): number = Int(exactly: n)
        case .string(let text):
            let lowered = text.trimmingWhitespace.lowercased()
            number = lowered.hasPrefix("0x") ? Int(lowered.dropFirst(2), radix: 16) : Int(lowered)
        default: number = nil
        }
        guard let number else { throw error(prefix + key, "not a whole number (or \"0x…\" hex)") }
        guard range.contains(number) else { throw error(prefix + key, "\(number) is outside \(range.lowerBound)…\(range.upperBound)") }
        return number
    }

    func bool(_ object: JSONObject, _ key: String, at prefix: String) throws(AppSpecError) -> Bool? {
        guard let value = object[key] else { return nil }
        guard let flag = value.boolValue else { throw error(prefix + key, "not true or false") }
        return flag
    }

    func property(_ item: JSONValue, at path: String) throws(AppSpecError) -> AppProperty {
        guard let object = item.objectValue else { throw error(path, "not an object") }
        let at = path + "."
        try refuseUnknown(object, allowed: AppRelease.propertyFields, at: at)
        let prop = try string(object, "prop", required: true, at: at) ?? ""
        guard AppProperty.isValidName(prop) else {
            throw error(at + "prop", "\(SettingValue.text(prop).shown): letters, digits, '-', '_' and '.' only, at most 64")
        }
        guard prop != ConfigurationImage.idKey else { throw error(at + "prop", "\(prop) is reserved: the configuration file names itself with it") }
        let typeName = try string(object, "type", required: true, at: at) ?? ""
        guard let kind = AppProperty.Kind(rawValue: typeName) else {
            throw error(at + "type", "\(SettingValue.text(typeName).shown): one of \(AppProperty.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var property = AppProperty(prop: prop, label: try string(object, "label", at: at), kind: kind)
        property.required = try bool(object, "required", at: at) ?? false
        let limits = Int(Int32.min)...Int(Int32.max)
        property.min = try integer(object, "min", at: at, range: limits).map(Int64.init)
        property.max = try integer(object, "max", at: at, range: limits).map(Int64.init)
        if let min = property.min, let max = property.max, min > max { throw error(at + "min", "\(min) is above max \(max)") }
        if let pattern = try string(object, "pattern", at: at) {
            guard kind == .text || kind == .password else { throw error(at + "pattern", "only text and password properties take a pattern") }
            if let problem = AppPattern.problem(pattern) { throw error(at + "pattern", problem) }
            property.pattern = pattern
        }
        if let choices = object["choices"] {
            guard kind == .select else { throw error(at + "choices", "only select properties take choices") }
            guard let items = choices.arrayValue, !items.isEmpty, items.count <= 256 else { throw error(at + "choices", "a list of 1…256 strings") }
            var seen: [String] = []
            for item in items {
                guard let text = item.stringValue, !text.isEmpty, text.utf8.count <= 256 else { throw error(at + "choices", "a list of 1…256 strings") }
                guard !seen.contains(text) else { throw error(at + "choices", "\(SettingValue.text(text).shown) is listed twice") }
                seen.append(text)
            }
            property.choices = seen
        } else if kind == .select {
            throw error(at + "choices", "a select property needs its choices")
        }
        if kind == .boolean || kind == .select, property.min != nil || property.max != nil {
            throw error(at + "min", "\(kind.rawValue) properties take no min or max")
        }
        if let value = object["default"] {
            guard kind != .password else { throw error(at + "default", "a password property has no default (it would be the same secret on every device)") }
            guard let typed = SettingValue(json: value) else { throw error(at + "default", "not a string, whole number or boolean") }
            switch property.check(typed) {
            case .success(let checked): property.defaultValue = checked
            case .failure(let problem): throw error(at + "default", problem.reason)
            }
        }
        return property
    }

    func filesystem(_ value: JSONValue) throws(AppSpecError) -> FilesystemSpec {
        guard let object = value.objectValue else { throw error("filesystem", "not an object") }
        let at = "filesystem."
        try refuseUnknown(object, allowed: AppRelease.filesystemFields, at: at)
        let typeName = try string(object, "type", at: at) ?? "spiffs"
        guard let kind = FilesystemSpec.Kind(rawValue: typeName) else { throw error(at + "type", "\(SettingValue.text(typeName).shown): spiffs or littlefs") }
        let flash = 0...(64 << 20)
        let offset = try integer(object, "offset", required: true, at: at, range: flash) ?? 0
        let size = try integer(object, "size", required: true, at: at, range: 1...(64 << 20)) ?? 0
        var spec = FilesystemSpec(kind: kind, offset: offset, size: size)
        spec.blockSize = try integer(object, "block-size", at: at, range: 128...(1 << 20)) ?? spec.blockSize
        switch kind {
        case .spiffs:
            for field in ["name-max"] where object[field] != nil { throw error(at + field, "a LittleFS parameter (SPIFFS has obj-name-len)") }
            spec.pageSize = try integer(object, "page-size", at: at, range: 64...(64 << 10)) ?? spec.pageSize
            spec.nameLength = try integer(object, "obj-name-len", at: at, range: 2...255) ?? spec.nameLength
            spec.metaLength = try integer(object, "meta-len", at: at, range: 0...64) ?? spec.metaLength
            spec.useMagic = try bool(object, "use-magic", at: at) ?? spec.useMagic
            spec.useMagicLength = try bool(object, "use-magic-len", at: at) ?? spec.useMagicLength
            spec.alignedObjectIndexTables = try bool(object, "aligned-obj-ix-tables", at: at) ?? spec.alignedObjectIndexTables
        case .littlefs:
            for field in ["page-size", "obj-name-len", "meta-len", "use-magic", "use-magic-len", "aligned-obj-ix-tables"] where object[field] != nil {
                throw error(at + field, "a SPIFFS parameter (LittleFS has block-size and name-max)")
            }
            spec.nameLength = try integer(object, "name-max", at: at, range: 1...1022) ?? spec.nameLength
        }
        guard spec.size % spec.blockSize == 0 else { throw error(at + "size", "\(spec.size) is not a multiple of block-size \(spec.blockSize)") }
        return spec
    }
}
