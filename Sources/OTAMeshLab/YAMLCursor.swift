import Yams

/// A position in a parsed YAML document: the node, its key path and the file, so every
/// failure names where it happened.
struct YAMLCursor {
    let node: Node
    let path: String
    let file: String

    func fail(_ reason: String) -> TopologyError {
        TopologyError(file: file, line: node.mark?.line, key: path, reason: reason)
    }

    func child(_ key: String, _ node: Node) -> YAMLCursor {
        YAMLCursor(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// A mapping whose keys must all be in `allowed`; duplicates and unknown keys are errors.
    func mapping(allowed: [String]) throws(TopologyError) -> YAMLFields {
        let pairs = try mappingPairs()
        for (key, value) in pairs where !allowed.contains(key) {
            throw child(key, value.node).fail("unknown key '\(key)' (known: \(allowed.joined(separator: ", ")))")
        }
        return YAMLFields(owner: self, pairs: pairs)
    }

    /// A mapping with free keys (names), in document order.
    func mappingPairs() throws(TopologyError) -> [(String, YAMLCursor)] {
        guard let mapping = node.mapping else { throw fail("expected a mapping of keys, got \(kind)") }
        var pairs: [(String, YAMLCursor)] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { throw fail("keys must be plain strings") }
            if pairs.contains(where: { $0.0 == key }) { throw child(key, keyNode).fail("duplicate key '\(key)'") }
            pairs.append((key, child(key, value)))
        }
        return pairs
    }

    func sequence() throws(TopologyError) -> [YAMLCursor] {
        guard let sequence = node.sequence else { throw fail("expected a list, got \(kind)") }
        return sequence.enumerated().map { index, element in
            YAMLCursor(node: element, path: "\(path)[\(index)]", file: file)
        }
    }

    func string() throws(TopologyError) -> String {
        guard let scalar = node.scalar, !scalar.string.isEmpty else { throw fail("expected a non-empty value, got \(kind)") }
        return scalar.string
    }

    /// A name matching `^[a-z0-9][a-z0-9-]*$` of at most `maxLength` characters.
    func name(maxLength: Int, what: String) throws(TopologyError) -> String {
        let text = try string()
        if let problem = YAMLCursor.nameProblem(text, maxLength: maxLength, what: what) { throw fail(problem) }
        return text
    }

    /// Why `text` is not a valid name, or nil.
    static func nameProblem(_ text: String, maxLength: Int, what: String) -> String? {
        let allowed = text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        guard allowed, text.first != "-", (1...maxLength).contains(text.count) else {
            return "\(what) '\(text)' must be 1…\(maxLength) characters of a-z, 0-9 and '-', not starting with '-'"
        }
        return nil
    }

    func bool() throws(TopologyError) -> Bool {
        guard let scalar = node.scalar else { throw fail("expected true or false, got \(kind)") }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail("expected true or false, got '\(scalar.string)'")
        }
    }

    func int(in range: ClosedRange<Int>) throws(TopologyError) -> Int {
        guard let scalar = node.scalar, let value = Int(scalar.string), range.contains(value) else {
            throw fail("expected a whole number in \(range.lowerBound)…\(range.upperBound), got '\(node.scalar?.string ?? kind)'")
        }
        return value
    }

    /// A percentage 0…100, written `20`, `0.5` or `20%`.
    func percent() throws(TopologyError) -> Double {
        let text = try string()
        let number = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let value = Double(number), value.isFinite, (0...100).contains(value) else {
            throw fail("expected a percentage 0…100 like 1, 0.5 or 20%, got '\(text)'")
        }
        return value
    }

    func duration() throws(TopologyError) -> Double {
        let text = try string()
        guard let seconds = LabDuration.seconds(text) else { throw fail("expected a duration like 500ms, 2s, 1m, got '\(text)'") }
        return seconds
    }

    func rate() throws(TopologyError) -> LinkRate {
        let text = try string()
        guard let rate = LinkRate(text) else { throw fail("expected a rate like 512kbit, 20mbit or 1gbit (at least 8kbit), got '\(text)'") }
        return rate
    }

    func address() throws(TopologyError) -> IPv4Address {
        let text = try string()
        guard let address = IPv4Address(text) else { throw fail("expected an IPv4 address like 10.77.0.5, got '\(text)'") }
        return address
    }

    var kind: String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let scalar): scalar.string.isEmpty ? "nothing" : "'\(scalar.string)'"
        case .alias: "an alias"
        }
    }
}

/// The keys of one mapping, looked up by name.
struct YAMLFields {
    let owner: YAMLCursor
    let pairs: [(String, YAMLCursor)]

    subscript(key: String) -> YAMLCursor? { pairs.first { $0.0 == key }?.1 }

    func required(_ key: String) throws(TopologyError) -> YAMLCursor {
        guard let value = self[key] else { throw owner.fail("missing required key '\(key)'") }
        return value
    }
}
