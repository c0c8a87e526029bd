/// What `otamesh image inspect` reports about one image. Encodes to the documented JSON
/// (camelCase keys; absent fields are omitted).
public struct ImageReport: Sendable, Equatable, Codable {
    public var format: ImageFormat
    public var size: Int
    public var sha256: String
    /// True when every checksum and hash the format carries holds.
    public var valid: Bool
    /// Why the image is not valid, one line each (empty when valid).
    public var problems: [String]
    public var version: String?
    /// Which scheme ``version`` parses as: `semver`, `esp8266`, `dotted`.
    public var versionScheme: String?
    public var chip: String?
    public var project: String?
    public var secureVersion: UInt32?
    public var idfVersion: String?
    public var elfSHA256: String?
    public var compressed: Bool?
    /// Format-specific fields (segment count, flash mode, TLV types, …), as strings.
    public var details: [String: String]

    public init(format: ImageFormat, size: Int, sha256: String) {
        self.format = format
        self.size = size
        self.sha256 = sha256
        self.valid = true
        self.problems = []
        self.details = [:]
    }

    /// Records a problem and marks the image invalid.
    mutating func fail(_ problem: ImageProblem) {
        valid = false
        problems.append(problem.description)
    }

    mutating func setVersion(_ text: String?) {
        guard let text, !text.isEmpty else { return }
        version = text
        versionScheme = FirmwareVersion(text)?.scheme
    }
}
