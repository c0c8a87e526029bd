/// A topology that cannot be used, saying the file, the key (a path such as
/// `gateways.gw3.join[0]`) and why.
public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// The line in the file, when the YAML parser knew it.
    public var line: Int?
    public var key: String
    public var reason: String

    public init(file: String, line: Int? = nil, key: String, reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return key.isEmpty ? "\(place): \(reason)" : "\(place): \(key): \(reason)"
    }
}
