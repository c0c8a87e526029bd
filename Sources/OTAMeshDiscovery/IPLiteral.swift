#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// IP literals a peer may be dialled at, in their canonical text form.
enum IPLiteral {
    /// The canonical form of `text` if it is an IPv4 or IPv6 literal another host can dial:
    /// not unspecified, loopback, multicast, or IPv6 link-local (whose zone means nothing to
    /// the receiver). Zones (`%eth0`), brackets and ports are not accepted.
    static func dialable(_ text: some StringProtocol) -> String? {
        let text = String(text)
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            let octets = withUnsafeBytes(of: v4) { Array($0) }
            if octets[0] == 0 || octets[0] == 127 || octets[0] >= 224 { return nil }
            return format(AF_INET, &v4, length: Int(INET_ADDRSTRLEN))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            if bytes.allSatisfy({ $0 == 0 }) { return nil }  // ::
            if bytes.dropLast().allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return nil }  // ::1
            if bytes[0] == 0xff { return nil }  // multicast
            if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return nil }  // fe80::/10
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                // IPv4-mapped: judge (and write) it as the IPv4 address it is.
                return dialable(bytes[12...].map(String.init).joined(separator: "."))
            }
            return format(AF_INET6, &v6, length: Int(INET6_ADDRSTRLEN))
        }
        return nil
    }

    private static func format<Address>(_ family: Int32, _ address: inout Address, length: Int) -> String? {
        var buffer = [CChar](repeating: 0, count: length)
        let written = withUnsafeBytes(of: &address) { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(length)) }
        guard written != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
