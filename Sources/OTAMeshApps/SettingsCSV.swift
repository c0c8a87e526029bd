/// One device's settings change as an admin gives it: `prop=value` words and props to unset,
/// optionally naming the app version to check them against. Its printed form never shows a value.
public struct SettingsAssignment: Codable, Sendable, Equatable, CustomStringConvertible {
    public var id: String
    public var app: String?
    public var set: [String]
    public var unset: [String]
    /// The device's address for configuration images that hold a password (nil: as it was,
    /// else the address the device last asked from).
    public var address: String?

    public init(id: String, app: String? = nil, set: [String], unset: [String] = [], address: String? = nil) {
        self.id = id
        self.app = app
        self.set = set
        self.unset = unset
        self.address = address
    }

    public var description: String {
        "\(id): set \(set.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }.joined(separator: ",")) (values redacted)"
    }
}

/// `otamesh device config import FILE.csv`: one row per device. The header names the columns:
/// `device` (required), `app` (optional, `name@version`), then one column per property. An
/// empty cell leaves that property as it is. RFC 4180 quoting. Pure.
public enum SettingsCSV {
    public static let maxBytes = 4 << 20
    public static let maxRows = 20_000

    /// The rows of `bytes`, or every problem with its line number.
    public static func parse(_ bytes: [UInt8], file: String) -> Result<[SettingsAssignment], SettingsChange.Problems> {
        func problem(_ line: Int, _ reason: String) -> Result<[SettingsAssignment], SettingsChange.Problems> {
            .failure(SettingsChange.Problems(problems: [SettingProblem(prop: "\(file):\(line)", reason: reason)]))
        }
        guard bytes.count <= maxBytes else { return problem(0, "\(bytes.count) bytes, at most \(maxBytes)") }
        guard let text = String(validating: bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes, as: UTF8.self) else {
            return problem(0, "not UTF-8 text")
        }
        let records: [(line: Int, cells: [String])]
        switch rows(text) {
        case .success(let parsed): records = parsed
        case .failure(let failure): return problem(failure.line, failure.reason)
        }
        guard let header = records.first else { return problem(1, "empty: the first row names the columns (device, then properties)") }
        let columns = header.cells.map(\.trimmingWhitespace)
        guard let deviceColumn = columns.firstIndex(of: "device") else { return problem(header.line, "no device column (the first row names the columns)") }
        let appColumn = columns.firstIndex(of: "app")
        var seen: Set<String> = []
        for column in columns where !seen.insert(column).inserted { return problem(header.line, "column \(column) twice") }
        for (index, column) in columns.enumerated() where index != deviceColumn && index != appColumn {
            if !AppProperty.isValidName(column) { return problem(header.line, "column \(SettingValue.text(column).shown) is not a property name") }
        }
        guard records.count - 1 <= maxRows else { return problem(records[maxRows].line, "more than \(maxRows) devices") }
        var assignments: [SettingsAssignment] = []
        var problems: [SettingProblem] = []
        var devices: Set<String> = []
        for record in records.dropFirst() {
            if record.cells.allSatisfy({ $0.trimmingWhitespace.isEmpty }) { continue }
            guard record.cells.count == columns.count else {
                problems.append(SettingProblem(prop: "\(file):\(record.line)", reason: "\(record.cells.count) cells, the header has \(columns.count)"))
                continue
            }
            let id = record.cells[deviceColumn].trimmingWhitespace
            guard !id.isEmpty else {
                problems.append(SettingProblem(prop: "\(file):\(record.line)", reason: "no device id"))
                continue
            }
            guard devices.insert(id.lowercased()).inserted else {
                problems.append(SettingProblem(prop: "\(file):\(record.line)", reason: "device \(SettingValue.text(id).shown) has a row already"))
                continue
            }
            let app = appColumn.map { record.cells[$0].trimmingWhitespace }.flatMap { $0.isEmpty ? nil : $0 }
            var set: [String] = []
            for (index, column) in columns.enumerated() where index != deviceColumn && index != appColumn && !record.cells[index].isEmpty {
                set.append("\(column)=\(record.cells[index])")
            }
            assignments.append(SettingsAssignment(id: id, app: app, set: set))
        }
        return problems.isEmpty ? .success(assignments) : .failure(SettingsChange.Problems(problems: problems))
    }

    struct RowError: Error {
        let line: Int
        let reason: String
    }

    /// RFC 4180 records with the line each starts on; quoted cells may hold commas, quotes
    /// (doubled) and line breaks.
    static func rows(_ text: String) -> Result<[(line: Int, cells: [String])], RowError> {
        var records: [(line: Int, cells: [String])] = []
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var afterQuote = false
        var line = 1
        var start = 1
        var characters = text.makeIterator()
        while let character = characters.next() {
            if quoted {
                if character == "\"" {
                    quoted = false
                    afterQuote = true
                } else {
                    if character == "\n" || character == "\r\n" { line += 1 }
                    cell.append(character)
                }
                continue
            }
            switch character {
            case "\"":
                if afterQuote {
                    cell.append("\"")
                    quoted = true
                    afterQuote = false
                } else if cell.isEmpty {
                    quoted = true
                } else {
                    return .failure(RowError(line: line, reason: "a quote inside an unquoted cell"))
                }
            case ",":
                cells.append(cell)
                cell = ""
                afterQuote = false
            case "\n", "\r\n", "\r":
                cells.append(cell)
                records.append((start, cells))
                cells = []
                cell = ""
                afterQuote = false
                line += 1
                start = line
            default:
                if afterQuote { return .failure(RowError(line: line, reason: "text after a closing quote")) }
                cell.append(character)
            }
        }
        if quoted { return .failure(RowError(line: start, reason: "a quoted cell is not closed")) }
        if !cell.isEmpty || !cells.isEmpty {
            cells.append(cell)
            records.append((start, cells))
        }
        return .success(records)
    }
}
