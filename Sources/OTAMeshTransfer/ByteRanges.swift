/// A closed byte range `first...last` of a representation.
public struct ByteRange: Sendable, Equatable {
    public let first: Int64
    public let last: Int64
    public var count: Int64 { last - first + 1 }

    public init(first: Int64, last: Int64) {
        self.first = first
        self.last = last
    }

    /// `bytes first-last/total` for a Content-Range header.
    public func contentRange(total: Int64) -> String { "bytes \(first)-\(last)/\(total)" }
}

/// Server side: what a `Range` request header asks for (RFC 9110 §14).
public enum RangeRequest: Sendable, Equatable {
    /// No (usable) Range header: send the whole representation (200).
    case full
    /// One or more satisfiable ranges (206; more than one → multipart/byteranges).
    case partial([ByteRange])
    /// Syntactically fine but nothing satisfiable: 416 with `Content-Range: bytes */LENGTH`.
    case unsatisfiable

    /// Most ranges honoured in one request; more is treated as abuse and answered with the
    /// whole representation (RFC 9110 allows ignoring Range).
    public static let maxRanges = 16

    /// Parses a Range header value against a representation of `length` bytes. Malformed
    /// headers are ignored (→ `.full`), as RFC 9110 requires; numbers that overflow are malformed.
    public static func parse(_ header: String?, length: Int64) -> RangeRequest {
        guard let header, header.hasPrefix("bytes=") else { return .full }
        let specs = header.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false)
        guard !specs.isEmpty, specs.count <= maxRanges else { return .full }
        var ranges: [ByteRange] = []
        for rawSpec in specs {
            let spec = rawSpec.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
            let text = String(spec)
            guard let dash = text.firstIndex(of: "-") else { return .full }
            let startText = text[..<dash]
            let endText = text[text.index(after: dash)...]
            guard startText.allSatisfy(\.isASCIIDigitCharacter), endText.allSatisfy(\.isASCIIDigitCharacter) else { return .full }
            if startText.isEmpty {
                // Suffix range: the last N bytes.
                guard let suffix = Int64(endText), !endText.isEmpty else { return .full }
                if suffix == 0 || length == 0 { continue }
                ranges.append(ByteRange(first: max(0, length - suffix), last: length - 1))
            } else {
                guard let first = Int64(startText) else { return .full }
                var last = length - 1
                if !endText.isEmpty {
                    guard let end = Int64(endText) else { return .full }
                    guard end >= first else { return .full }  // bytes=5-2 is invalid → ignore
                    last = min(end, length - 1)
                }
                if first >= length { continue }
                ranges.append(ByteRange(first: first, last: last))
            }
        }
        return ranges.isEmpty ? .unsatisfiable : .partial(coalesced(ranges))
    }

    /// Ranges as asked, unless some overlap: then merged (sorted, overlapping or touching ones
    /// joined), so a request can never make the server send more than the representation once —
    /// `bytes=0-,0-,…` sixteen times is one range, not sixteen copies (RFC 9110 §14.2 allows
    /// coalescing).
    static func coalesced(_ ranges: [ByteRange]) -> [ByteRange] {
        let sorted = ranges.sorted { ($0.first, $0.last) < ($1.first, $1.last) }
        guard zip(sorted, sorted.dropFirst()).contains(where: { $1.first <= $0.last }) else { return ranges }
        var merged: [ByteRange] = []
        for range in sorted {
            if let last = merged.last, range.first <= last.last + 1 {
                merged[merged.count - 1] = ByteRange(first: last.first, last: max(last.last, range.last))
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}

/// Client side: whether a response lets a resumed download continue.
public enum ResumeCheck {
    public enum Verdict: Sendable, Equatable {
        /// 206 starting exactly at the requested offset with the expected total: append.
        case append
        /// 200 with the whole body (server ignored Range, or If-Range's validator changed): start over.
        case restart
        /// Something that cannot be right; the transfer fails at once with this reason.
        case fail(String)
    }

    /// Checks the status and Content-Range of a response to `Range: bytes=offset-`, given the
    /// signed total length.
    public static func check(status: Int, contentRange: String?, offset: Int64, total: Int64) -> Verdict {
        switch status {
        case 200:
            return .restart
        case 206:
            guard let contentRange, let parsed = parseContentRange(contentRange) else {
                return .fail("206 without a valid Content-Range")
            }
            guard parsed.total == total else {
                return .fail("Content-Range total \(parsed.total.map(String.init) ?? "*") differs from the signed length \(total)")
            }
            guard let range = parsed.range, range.first == offset else {
                return .fail("server sent \(contentRange), requested bytes=\(offset)-")
            }
            guard range.last < total else { return .fail("Content-Range \(contentRange) runs past the signed length") }
            return .append
        case 416:
            if let contentRange, let parsed = parseContentRange(contentRange), parsed.total == total, offset >= total {
                return .append  // we already hold every byte; nothing more to fetch
            }
            return .fail("416 Range Not Satisfiable for bytes=\(offset)- of \(total)")
        default:
            return .fail("HTTP \(status) to a resumed request")
        }
    }

    /// Parses `bytes first-last/total`, `bytes first-last/*` or `bytes */total`.
    public static func parseContentRange(_ value: String) -> (range: ByteRange?, total: Int64?)? {
        guard value.hasPrefix("bytes ") else { return nil }
        let body = value.dropFirst(6)
        guard let slash = body.firstIndex(of: "/") else { return nil }
        let rangePart = body[..<slash]
        let totalPart = body[body.index(after: slash)...]
        let total: Int64?
        if totalPart == "*" {
            total = nil
        } else {
            guard totalPart.allSatisfy(\.isASCIIDigitCharacter), let n = Int64(totalPart) else { return nil }
            total = n
        }
        if rangePart == "*" { return (nil, total) }
        let bounds = rangePart.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, bounds.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigitCharacter) }),
            let first = Int64(bounds[0]), let last = Int64(bounds[1]), first <= last
        else { return nil }
        return (ByteRange(first: first, last: last), total)
    }
}

extension Character {
    var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
