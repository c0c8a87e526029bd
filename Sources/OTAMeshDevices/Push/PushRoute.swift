#if canImport(Glibc)
import Glibc
#endif

/// The gateway's own address as a device reaches it. A gateway listening on all interfaces
/// (`0.0.0.0` / `::`) cannot give a device "fetch from 0.0.0.0": the image URL a push sends must
/// name the address on the device's segment, which is the source address the kernel picks for
/// a route to the device (asked with a connected UDP socket: no packet is sent).
public enum PushRoute {
    /// `url` with a wildcard host replaced by the local address toward `device`; unchanged when
    /// it names a real host or no route is known.
    public static func url(_ url: String?, toward device: String) -> String? {
        guard let url else { return nil }
        for wildcard in ["http://0.0.0.0:", "http://[::]:", "https://0.0.0.0:", "https://[::]:"] where url.hasPrefix(wildcard) {
            guard let local = localAddress(toward: device) else { return url }
            let scheme = wildcard.hasPrefix("https") ? "https://" : "http://"
            let host = local.contains(":") ? "[\(local)]" : local
            return scheme + host + ":" + url.dropFirst(wildcard.count)
        }
        return url
    }

    /// The source address for packets to `host` (an IPv4 or IPv6 literal), or nil.
    public static func localAddress(toward host: String) -> String? {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = UInt16(9).bigEndian
            return withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { source(AF_INET, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = UInt16(9).bigEndian
            return withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { source(AF_INET6, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        return nil
    }

    private static func source(_ family: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> String? {
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard connect(fd, address, length) == 0 else { return nil }
        var storage = sockaddr_storage()
        var size = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) }
        }
        guard named == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafePointer(to: &storage) { pointer -> String? in
            if family == AF_INET {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                    var address = v4.pointee.sin_addr
                    return inet_ntop(AF_INET, &address, &text, socklen_t(text.count)).map { String(cString: $0) }
                }
            }
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var address = v6.pointee.sin6_addr
                return inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)).map { String(cString: $0) }
            }
        }
    }
}
