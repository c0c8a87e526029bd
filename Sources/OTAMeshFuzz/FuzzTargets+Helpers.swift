/// Small readers the fuzz targets share.
extension FuzzInput {
    /// A chunk with a two-byte big-endian length.
    mutating func chunk16() -> [UInt8] {
        let length = u16()
        var out: [UInt8] = []
        out.reserveCapacity(min(length, 4096))
        for _ in 0..<length {
            if isEmpty { break }
            out.append(byte())
        }
        return out
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }

    func trimmingSpacesAndTabs() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}

extension Substring {
    func trimmingSpacesAndTabs() -> String { String(self).trimmingSpacesAndTabs() }
}
