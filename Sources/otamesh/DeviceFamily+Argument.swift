import ArgumentParser
import OTAMeshCommon

/// `--family NAME` takes a family this build knows; help lists the push families.
extension DeviceFamily: ExpressibleByArgument {
    public init?(argument: String) { self.init(known: argument) }
    public static var allValueStrings: [String] { push.map(\.rawValue) }
    public var defaultValueDescription: String { rawValue }
}
