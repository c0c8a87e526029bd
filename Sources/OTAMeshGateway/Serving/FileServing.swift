import OTAMeshCommon
import OTAMeshTransfer
import OTAMeshTrust

/// A committed blob as the device server offers it.
public struct ServedBlob: Sendable, Equatable {
    public let sha256: String
    public let size: Int64
    /// Seconds since the Unix epoch: when the store committed it (its Last-Modified).
    public let addedAt: Double

    /// The strong validator: the content's SHA-256 never changes for these bytes.
    public let etag: String
    /// `addedAt` as an HTTP date (formatted once, not per request).
    public let lastModified: String

    public init(sha256: String, size: Int64, addedAt: Double) {
        self.sha256 = sha256
        self.size = size
        self.addedAt = addedAt
        self.etag = "\"\(sha256)\""
        self.lastModified = HTTPDate.format(Int64(addedAt))
    }
}

/// HTTP semantics for serving one immutable blob (RFC 9110): HEAD == GET headers, ranges,
/// multipart/byteranges, 416, If-Range, If-None-Match, strong ETag, Last-Modified. Pure.
public enum FileServing {
    /// Builds the response to GET or HEAD for `blob`. `extra` headers (x-MD5, Content-Disposition)
    /// are added to every 200/206.
    public static func respond(
        to request: DeviceRequest, blob: ServedBlob, contentType: String = "application/octet-stream",
        extra: [(String, String)] = [], boundarySeed: String? = nil
    ) -> DeviceResponse {
        let lastModified = blob.lastModified
        let validators: [(String, String)] = [("ETag", blob.etag), ("Last-Modified", lastModified)]
        if let inm = request.header("if-none-match"), matches(inm, etag: blob.etag) {
            return DeviceResponse(status: 304, headers: validators + [("Accept-Ranges", "bytes")])
        }
        var ranges = RangeRequest.parse(request.header("range"), length: blob.size)
        if let ifRange = request.header("if-range"), ifRange != blob.etag, ifRange != lastModified {
            ranges = .full  // the client's copy is of another representation: send it whole
        }
        let common = [("Accept-Ranges", "bytes")] + validators
        switch ranges {
        case .full:
            return DeviceResponse(
                status: 200, headers: [("Content-Type", contentType)] + common + extra,
                blobSHA256: blob.sha256, body: blob.size > 0 ? [.file(ByteRange(first: 0, last: blob.size - 1))] : [])
        case .unsatisfiable:
            return DeviceResponse(status: 416, headers: [("Content-Range", "bytes */\(blob.size)")] + common)
        case .partial(let list) where list.count == 1:
            let range = list[0]
            return DeviceResponse(
                status: 206, headers: [("Content-Type", contentType), ("Content-Range", range.contentRange(total: blob.size))] + common + extra,
                blobSHA256: blob.sha256, body: [.file(range)])
        case .partial(let list):
            let boundary = "otamesh-" + String((boundarySeed ?? blob.sha256).prefix(24))
            var body: [DeviceResponse.Segment] = []
            for (index, range) in list.enumerated() {
                let head =
                    (index == 0 ? "" : "\r\n")
                    + "--\(boundary)\r\nContent-Type: \(contentType)\r\nContent-Range: \(range.contentRange(total: blob.size))\r\n\r\n"
                body.append(.bytes(Array(head.utf8)))
                body.append(.file(range))
            }
            body.append(.bytes(Array("\r\n--\(boundary)--\r\n".utf8)))
            return DeviceResponse(
                status: 206, headers: [("Content-Type", "multipart/byteranges; boundary=\(boundary)")] + common + extra,
                blobSHA256: blob.sha256, body: body)
        }
    }

    /// If-None-Match: `*` or a list holding our tag (weak comparison, as RFC 9110 §13.1.2 says).
    static func matches(_ header: String, etag: String) -> Bool {
        if header.trimmingWhitespace() == "*" { return true }
        return header.split(separator: ",").contains { tag in
            var t = tag.trimmingWhitespace()
            if t.hasPrefix("W/") { t.removeFirst(2) }
            return t == etag
        }
    }
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), computed without Foundation or locale.
public enum HTTPDate {
    static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    public static func format(_ seconds: Int64) -> String {
        let dayNumber = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - dayNumber * 86_400
        let (year, month, day) = ISOTime.civilFromDays(dayNumber)
        let weekday = days[Int(((dayNumber % 7) + 7) % 7)]
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[Int(month - 1)]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) GMT"
    }
}
