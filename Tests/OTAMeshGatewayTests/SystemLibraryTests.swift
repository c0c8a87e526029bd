import CDNSSD
import CLZMA
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The system-library targets resolve through pkg-config and link. No daemon is contacted
/// and nothing is sent: this only proves the modules are usable by later issues.
@Suite("system libraries")
struct SystemLibraryTests {
    @Test("liblzma is the Debian 12 version or newer")
    func lzma() {
        let version = String(cString: lzma_version_string())
        #expect(version.hasPrefix("5."), "\(version)")
        #expect(lzma_version_number() >= 50_040_012)
    }

    @Test("dns_sd (Avahi compat) links; its error constants are importable")
    func dnssd() {
        setenv("AVAHI_COMPAT_NOWARN", "1", 1)
        #expect(kDNSServiceErr_NoError == 0)
        #expect(Int32(kDNSServiceErr_Unsupported) == -65544)
        // Resolving the function symbol proves the library linked.
        let register:
            (
                UnsafeMutablePointer<DNSServiceRef?>?, DNSServiceFlags, UInt32, UnsafePointer<CChar>?,
                UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UInt16, UInt16,
                UnsafeRawPointer?, DNSServiceRegisterReply?, UnsafeMutableRawPointer?
            ) -> DNSServiceErrorType = DNSServiceRegister
        _ = register
    }
}
