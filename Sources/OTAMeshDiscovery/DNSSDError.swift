import CDNSSD

/// Names for dns_sd error codes in log lines.
enum DNSSDError {
    static let noError = DNSServiceErrorType(kDNSServiceErr_NoError)

    static func describe(_ error: DNSServiceErrorType) -> String {
        let names: [Int: String] = [
            kDNSServiceErr_Unknown: "kDNSServiceErr_Unknown (no daemon or connection lost)",
            kDNSServiceErr_NoSuchName: "kDNSServiceErr_NoSuchName", kDNSServiceErr_NoMemory: "kDNSServiceErr_NoMemory",
            kDNSServiceErr_BadParam: "kDNSServiceErr_BadParam", kDNSServiceErr_BadReference: "kDNSServiceErr_BadReference",
            kDNSServiceErr_BadState: "kDNSServiceErr_BadState", kDNSServiceErr_BadFlags: "kDNSServiceErr_BadFlags",
            kDNSServiceErr_Unsupported: "kDNSServiceErr_Unsupported", kDNSServiceErr_NotInitialized: "kDNSServiceErr_NotInitialized",
            kDNSServiceErr_NameConflict: "kDNSServiceErr_NameConflict", kDNSServiceErr_Invalid: "kDNSServiceErr_Invalid",
            kDNSServiceErr_Incompatible: "kDNSServiceErr_Incompatible", kDNSServiceErr_Refused: "kDNSServiceErr_Refused",
        ]
        return names[Int(error)] ?? "dns_sd error \(error)"
    }
}
