/// A minimal, strict ustar archive: regular files only, relative paths without `.`/`..`
/// segments, sizes bounded. Enough for update bundles, and safe to read from a USB stick that
/// an attacker may have prepared: anything else is refused with the entry named.
public enum Tar {
    public struct Entry: Sendable, Equatable {
        public let path: String
        public let bytes: [UInt8]
        public init(path: String, bytes: [UInt8]) {
            self.path = path
            self.bytes = bytes
        }
    }

    /// Writes entries as a ustar archive (two zero blocks at the end).
    public static func write(_ entries: [Entry]) throws(TrustError) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            try checkPath(entry.path)
            var header = [UInt8](repeating: 0, count: 512)
            let (prefix, name) = try split(entry.path)
            put(&header, 0, 100, Array(name.utf8))
            put(&header, 100, 8, octal(0o644, 7))
            put(&header, 108, 8, octal(0, 7))
            put(&header, 116, 8, octal(0, 7))
            put(&header, 124, 12, octal(entry.bytes.count, 11))
            put(&header, 136, 12, octal(0, 11))
            header[156] = UInt8(ascii: "0")
            put(&header, 257, 6, Array("ustar\0".utf8))
            put(&header, 263, 2, Array("00".utf8))
            put(&header, 345, 155, Array(prefix.utf8))
            put(&header, 148, 8, [UInt8](repeating: 0x20, count: 8))
            let sum = header.reduce(0) { $0 + Int($1) }
            put(&header, 148, 8, octal(sum, 6) + [0, 0x20])
            out += header
            out += entry.bytes
            out += [UInt8](repeating: 0, count: (512 - entry.bytes.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    /// Reads a ustar archive. Directories are skipped; links, devices and anything odd are refused.
    public static func read(_ archive: [UInt8], file: String, maxEntries: Int = 10_000) throws(TrustError) -> [Entry] {
        var entries: [Entry] = []
        var offset = 0
        while offset + 512 <= archive.count {
            let header = Array(archive[offset..<(offset + 512)])
            if header.allSatisfy({ $0 == 0 }) { return entries }
            guard entries.count < maxEntries else { throw .malformed(file: file, reason: "more than \(maxEntries) entries") }
            let stored = number(header, 148, 8)
            var blank = header
            for i in 148..<156 { blank[i] = 0x20 }
            guard stored == blank.reduce(0, { $0 + Int($1) }) else {
                throw .malformed(file: file, reason: "damaged header at byte \(offset) (checksum)")
            }
            let name = string(header, 0, 100)
            let prefix = string(header, 345, 155)
            let path = prefix.isEmpty ? name : "\(prefix)/\(name)"
            guard let size = number(header, 124, 12), size >= 0 else { throw .malformed(file: file, reason: "\(path): bad size") }
            let type = header[156]
            let dataStart = offset + 512
            guard dataStart + size <= archive.count else {
                throw .malformed(file: file, reason: "\(path): truncated (\(size) bytes claimed, \(archive.count - dataStart) present)")
            }
            switch type {
            case UInt8(ascii: "0"), 0:
                try checkPath(path)
                guard !entries.contains(where: { $0.path == path }) else { throw .malformed(file: file, reason: "\(path): listed twice") }
                entries.append(Entry(path: path, bytes: Array(archive[dataStart..<(dataStart + size)])))
            case UInt8(ascii: "5"):
                break
            default:
                throw .malformed(file: file, reason: "\(path): only regular files are allowed (type \(Character(Unicode.Scalar(type))))")
            }
            offset = dataStart + (size + 511) / 512 * 512
        }
        throw .malformed(file: file, reason: "truncated: no end-of-archive marker")
    }

    static func checkPath(_ path: String) throws(TrustError) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw .malformed(file: path, reason: "bundle paths must be relative, without empty, . or .. segments")
        }
    }

    static func split(_ path: String) throws(TrustError) -> (String, String) {
        let bytes = Array(path.utf8)
        if bytes.count <= 100 { return ("", path) }
        for (index, byte) in bytes.enumerated().reversed() where byte == UInt8(ascii: "/") && index <= 155 && bytes.count - index - 1 <= 100 {
            return (String(decoding: bytes[..<index], as: UTF8.self), String(decoding: bytes[(index + 1)...], as: UTF8.self))
        }
        throw .malformed(file: path, reason: "path too long for a tar entry")
    }

    static func put(_ header: inout [UInt8], _ offset: Int, _ width: Int, _ bytes: [UInt8]) {
        for (index, byte) in bytes.prefix(width).enumerated() { header[offset + index] = byte }
    }

    static func octal(_ value: Int, _ digits: Int) -> [UInt8] {
        let text = String(value, radix: 8)
        return Array((String(repeating: "0", count: max(0, digits - text.count)) + text).utf8) + [0]
    }

    static func string(_ header: [UInt8], _ offset: Int, _ width: Int) -> String {
        let field = header[offset..<(offset + width)]
        return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func number(_ header: [UInt8], _ offset: Int, _ width: Int) -> Int? {
        let text = String(decoding: header[offset..<(offset + width)].prefix { $0 != 0 && $0 != 0x20 }, as: UTF8.self)
        return text.isEmpty ? 0 : Int(text, radix: 8)
    }
}
