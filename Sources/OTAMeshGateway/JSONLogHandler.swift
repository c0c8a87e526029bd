import Logging
import OTAMeshCommon
import OTAMeshFirmware

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"ts":"2026-11-23T10:00:00.123Z","level":"info","label":"otamesh.agent","msg":"…","blob.sha256":"…"}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("ts", Self.timestamp()), ("level", event.level.rawValue), ("label", label), ("msg", "\(event.message)"),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() { fields.append((key, "\(merged[key]!)")) }
        if event.level >= .error || logLevel <= .debug {
            fields.append(("source", "\(event.file.split(separator: "/").last ?? ""):\(event.line)"))
        }
        let line = "{" + fields.map { "\(jsonQuoted($0.0)):\(jsonQuoted($0.1))" }.joined(separator: ",") + "}\n"
        // One write(2) per line: atomic for lines up to PIPE_BUF, and no shared FILE* state.
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var time = spec.tv_sec
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}

/// A text log handler whose lines are safe on a terminal: the message and every metadata value
/// (device ids, versions, error texts a device sent) pass through ``terminalSafe(_:)``.
public struct TerminalSafeLogHandler<Inner: LogHandler>: LogHandler {
    public var inner: Inner

    public init(_ inner: Inner) { self.inner = inner }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var safe = event
        safe.message = Logger.Message(stringLiteral: terminalSafe("\(event.message)"))
        safe.metadata = event.metadata.map { $0.mapValues { .string(terminalSafe("\($0)")) } }
        inner.log(event: safe)
    }
}

/// Installs the process-wide log handler once, at startup, from the configuration.
public enum LogSetup {
    public static func bootstrap(format: LogFormat, level: String) {
        let parsed = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                var handler = JSONLogHandler(label: label)
                handler.logLevel = parsed
                return handler
            case .text:
                var handler = TerminalSafeLogHandler(StreamLogHandler.standardError(label: label))
                handler.logLevel = parsed
                return handler
            }
        }
    }
}
