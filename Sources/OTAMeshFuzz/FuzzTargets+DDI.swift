import OTAMeshDevices

extension FuzzTargets {
    /// What a hawkBit DDI device sends: the first byte picks feedback, configData, a path or an
    /// Authorization header; the rest is the bytes.
    @Sendable static func ddi(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let kind = input.byte() % 4
        let bytes = input.rest()
        switch kind {
        case 0:
            if let feedback = try? DDI.Feedback(json: bytes) {
                precondition(feedback.details.count <= DDI.maxDetails && feedback.details.allSatisfy { $0.count <= DDI.maxDetailLength })
            }
        case 1:
            if let config = try? DDI.ConfigData(json: bytes) {
                precondition(config.data.count <= DDI.maxAttributes)
            }
        case 2:
            if let path = DDI.path(String(decoding: bytes, as: UTF8.self)) {
                precondition(DDI.isName(path.tenant) && DDI.isName(path.controllerID))
            }
        default:
            _ = DDI.credential(String(decoding: bytes, as: UTF8.self))
        }
    }
}
