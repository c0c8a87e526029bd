/// Why a lab could not be brought up, run or taken down.
public enum LabError: Error, Sendable, CustomStringConvertible {
    case topology(TopologyError)
    case spawn(command: String, reason: String)
    case commandFailed(command: String, status: Int32, output: String)
    case commandTimedOut(command: String, seconds: Double)
    /// A process did not come up: it exited, or its ready marker did not appear in time.
    case notReady(label: String, reason: String, log: String)
    /// Namespaces of this lab exist already (another run, or leftovers).
    case busy(namespaces: [String])
    case state(String)
    case interrupted(signal: Int32)

    public var description: String {
        switch self {
        case .topology(let error): error.description
        case .spawn(let command, let reason): "cannot start \(command): \(reason)"
        case .commandFailed(let command, let status, let output):
            "\(command) failed (exit \(status))" + (output.isEmpty ? "" : ": \(output)")
        case .commandTimedOut(let command, let seconds): "\(command) did not finish within \(LabDuration.text(seconds))"
        case .notReady(let label, let reason, let log): "\(label) did not come up: \(reason) (log: \(log))"
        case .busy(let namespaces):
            "namespaces of this lab exist already (\(namespaces.joined(separator: ", "))): another run is up, or a crashed one left them — run `otamesh lab down`"
        case .state(let reason): reason
        case .interrupted(let signal): "interrupted by signal \(signal)"
        }
    }
}
