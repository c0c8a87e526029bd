/// Why a filesystem or flash image cannot be built from the given files and parameters, or why
/// bytes are not a readable image. Each case renders as one line naming the filesystem, what
/// failed and the values, e.g. `SPIFFS: config/wifi.json: name is 40 bytes, obj-name-len 32 allows 31`.
public enum FilesystemImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A build parameter is out of range or inconsistent with another.
    case invalidParameter(filesystem: String, parameter: String, value: String, reason: String)
    /// A file's path cannot be stored (too long, empty, a byte the filesystem forbids).
    case invalidPath(filesystem: String, path: String, reason: String)
    /// The files do not fit the image's size.
    case doesNotFit(filesystem: String, needed: Int, available: Int, detail: String)
    /// Bytes read as an image are not one (a reader's error): where, and why.
    case malformedImage(filesystem: String, offset: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidParameter(filesystem, parameter, value, reason):
            "\(filesystem): \(parameter) \(value): \(reason)"
        case let .invalidPath(filesystem, path, reason):
            "\(filesystem): \(path.debugDescription): \(reason)"
        case let .doesNotFit(filesystem, needed, available, detail):
            "\(filesystem): the files need \(needed) bytes, the image has \(available): \(detail)"
        case let .malformedImage(filesystem, offset, reason):
            "\(filesystem): not a readable image at offset \(offset): \(reason)"
        }
    }
}
