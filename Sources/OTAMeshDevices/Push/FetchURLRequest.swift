import OTAMeshCommon

/// A fetch-url device's command as its registry options configure it (``FetchURLAdapter``),
/// validated: the method, the path, the body template with its placeholders, the content type,
/// the status codes that mean "accepted", and where the device answers its version. Pure.
///
/// Options (all optional): `method` (GET, POST, PUT, PATCH; default POST), `path` (default
/// `/ota`), `body` (default `{"url":"{url}"}`), `content_type` (default `application/json`),
/// `accept` (comma-separated codes or classes like `200,202` or `2xx`; default any 2xx),
/// `version_path` (default `/version`), `version_port` (default: the device's port),
/// `reboot_grace` (seconds the old version may still answer before the push is judged).
///
/// Placeholders in `body` and `path`: `{url}`, `{version}`, `{sha256}`, `{size}`, `{path}`,
/// `{device}`. Their values are JSON-escaped in a JSON body, percent-encoded in a form body and
/// in the path, inserted as they are otherwise.
public struct FetchURLRequest: Sendable, Equatable {
    public var method: String
    /// The command's path template (may carry placeholders, e.g. `/ota?url={url}`).
    public var path: String
    public var body: String
    public var contentType: String
    /// Accepted status codes; nil = any 2xx.
    public var accept: Set<Int>?
    /// The `accept` option as given (for messages).
    public var acceptText: String?
    public var versionPath: String
    public var versionPort: Int?
    /// Milliseconds; nil = the push timing's.
    public var rebootGrace: Int64?

    public static let placeholders = ["url", "version", "sha256", "size", "path", "device"]
    public static let methods = ["GET", "POST", "PUT", "PATCH"]
    public static let optionKeys = ["method", "path", "body", "content_type", "accept", "version_path", "version_port", "reboot_grace"]
    public static let defaultBody = "{\"url\":\"{url}\"}"

    /// What is wrong with a device's fetch-url options: the option, the value, why.
    public enum OptionError: Error, Sendable, Equatable, CustomStringConvertible {
        case unknownOption(String)
        case badMethod(String)
        case unknownPlaceholder(option: String, placeholder: String)
        case unbalancedBrace(option: String, value: String)
        case badPath(option: String, value: String)
        case badAccept(String)
        case badPort(String)
        case badGrace(String)
        case bodyWithGet

        public var description: String {
            switch self {
            case .unknownOption(let key):
                "unknown fetch-url option '\(key)' (known: \(FetchURLRequest.optionKeys.joined(separator: ", ")))"
            case .badMethod(let method):
                "option method: '\(method)' is not one of \(FetchURLRequest.methods.joined(separator: ", "))"
            case let .unknownPlaceholder(option, placeholder):
                "option \(option): unknown placeholder {\(placeholder)} (known: \(FetchURLRequest.placeholders.map { "{\($0)}" }.joined(separator: ", ")))"
            case let .unbalancedBrace(option, value):
                "option \(option): unbalanced { or } in \(value.prefix(80))"
            case let .badPath(option, value):
                "option \(option): '\(value.prefix(80))' must start with / and hold no spaces"
            case .badAccept(let value):
                "option accept: '\(value.prefix(80))' is not a comma-separated list of status codes (200) or classes (2xx)"
            case .badPort(let value):
                "option version_port: '\(value.prefix(20))' is not a port 1…65535"
            case .badGrace(let value):
                "option reboot_grace: '\(value.prefix(20))' is not a number of seconds"
            case .bodyWithGet:
                "option body: a GET command carries no body (put placeholders in the path instead)"
            }
        }
    }

    public init(
        method: String = "POST", path: String = "/ota", body: String = FetchURLRequest.defaultBody,
        contentType: String = "application/json", accept: Set<Int>? = nil, versionPath: String = "/version",
        versionPort: Int? = nil, rebootGrace: Int64? = nil
    ) {
        self.method = method
        self.path = path
        self.body = body
        self.contentType = contentType
        self.accept = accept
        self.versionPath = versionPath
        self.versionPort = versionPort
        self.rebootGrace = rebootGrace
    }

    /// Reads and checks a device's options (see the type's comment); nothing is partly applied.
    public init(options: [String: String]) throws(OptionError) {
        for key in options.keys.sorted() where !Self.optionKeys.contains(key) { throw .unknownOption(key) }
        self.init()
        if let method = options["method"] {
            guard Self.methods.contains(method.uppercased()) else { throw .badMethod(method) }
            self.method = method.uppercased()
        }
        if let path = options["path"] {
            try Self.checkPath(path, option: "path")
            try Self.checkPlaceholders(path, option: "path")
            self.path = path
        }
        if let body = options["body"] {
            guard method != "GET" || body.isEmpty else { throw .bodyWithGet }
            try Self.checkPlaceholders(body, option: "body")
            self.body = body
        } else if method == "GET" {
            body = ""
        }
        if let contentType = options["content_type"], !contentType.isEmpty { self.contentType = contentType }
        if let accept = options["accept"] {
            self.accept = try Self.parseAccept(accept)
            acceptText = accept
        }
        if let versionPath = options["version_path"] {
            try Self.checkPath(versionPath, option: "version_path")
            self.versionPath = versionPath
        }
        if let port = options["version_port"] {
            guard let number = Int(port), (1...65535).contains(number) else { throw .badPort(port) }
            versionPort = number
        }
        if let grace = options["reboot_grace"] {
            guard let seconds = Double(grace), seconds >= 0, seconds < 86_400 else { throw .badGrace(grace) }
            rebootGrace = Int64(seconds * 1000)
        }
    }

    /// Whether `status` means the device took the command.
    public func accepts(_ status: Int) -> Bool { accept.map { $0.contains(status) } ?? (200...299).contains(status) }

    /// How the body's placeholder values are escaped.
    enum Escaping { case json, form, none }

    var bodyEscaping: Escaping {
        let type = contentType.lowercased()
        if type.contains("json") { return .json }
        if type.contains("x-www-form-urlencoded") { return .form }
        return .none
    }

    /// The values of the placeholders for one push.
    public static func values(image: PushImage, device: PushTarget) -> [String: String] {
        [
            "url": image.url ?? "", "version": image.version ?? "", "sha256": image.sha256, "size": String(image.length),
            "path": image.path, "device": device.id,
        ]
    }

    /// The command's path with its placeholders filled (percent-encoded).
    public func renderedPath(_ values: [String: String]) -> String { Self.render(path, values, .form) }

    /// The command's body with its placeholders filled, escaped for the content type.
    public func renderedBody(_ values: [String: String]) -> String { Self.render(body, values, bodyEscaping) }

    /// Fills `{name}` placeholders (the template was checked: every name is known); other
    /// braces (a JSON body's own) stay as they are.
    static func render(_ template: String, _ values: [String: String], _ escaping: Escaping) -> String {
        let characters = Array(template)
        var out = ""
        var index = 0
        while index < characters.count {
            if characters[index] == "{", let (name, end) = placeholder(in: characters, at: index), let value = values[name] {
                switch escaping {
                case .json: out += String(jsonQuoted(value).dropFirst().dropLast())
                case .form: out += PercentEncoding.encode(value)
                case .none: out += value
                }
                index = end + 1
            } else {
                out.append(characters[index])
                index += 1
            }
        }
        return out
    }

    /// The `{word}` at `index` (a `{` there): the word and the index of its `}`; nil when the
    /// brace opens anything else.
    static func placeholder(in characters: [Character], at index: Int) -> (String, Int)? {
        var end = index + 1
        while end < characters.count, isWord(characters[end]) { end += 1 }
        guard end < characters.count, characters[end] == "}", end > index + 1 else { return nil }
        return (String(characters[(index + 1)..<end]), end)
    }

    static func isWord(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || character == "_")
    }

    /// Every `{word}` names a known placeholder, and no `{word` is left open. JSON bodies have
    /// braces of their own: `{"` starts JSON, not a placeholder, so only `{` + a bare word counts.
    static func checkPlaceholders(_ template: String, option: String) throws(OptionError) {
        let characters = Array(template)
        var index = 0
        while index < characters.count {
            guard characters[index] == "{" else { index += 1; continue }
            if let (name, end) = placeholder(in: characters, at: index) {
                guard placeholders.contains(name) else { throw .unknownPlaceholder(option: option, placeholder: name) }
                index = end + 1
                continue
            }
            var end = index + 1
            while end < characters.count, isWord(characters[end]) { end += 1 }
            // `{word` not closed right after the word: a placeholder typed wrong (JSON's own
            // braces are followed by a quote, a space, a brace or nothing, never a bare word).
            if end > index + 1 {
                throw .unbalancedBrace(option: option, value: template)
            }
            index += 1  // JSON's own brace
        }
    }

    static func checkPath(_ path: String, option: String) throws(OptionError) {
        guard path.hasPrefix("/"), !path.contains(where: { $0.isWhitespace }) else { throw .badPath(option: option, value: path) }
    }

    static func parseAccept(_ text: String) throws(OptionError) -> Set<Int> {
        var codes = Set<Int>()
        let parts = text.split(separator: ",").map { String($0.filter { $0 != " " }) }
        guard !parts.isEmpty else { throw .badAccept(text) }
        for part in parts {
            if part.count == 3, part.lowercased().hasSuffix("xx"), let first = part.first?.wholeNumberValue, (1...5).contains(first) {
                codes.formUnion((first * 100)...(first * 100 + 99))
            } else if let code = Int(part), (100...599).contains(code) {
                codes.insert(code)
            } else {
                throw .badAccept(text)
            }
        }
        return codes
    }
}
