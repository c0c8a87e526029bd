/// The `pattern` of a text property: a regular expression the whole value must match (Swift's
/// `Regex` syntax, which is PCRE-like for the classes, anchors and quantifiers catalogs use).
enum AppPattern {
    /// Why `pattern` is not a usable expression, or nil.
    static func problem(_ pattern: String) -> String? {
        guard pattern.utf8.count <= 512 else { return "longer than 512 bytes" }
        do {
            _ = try Regex(pattern)
            return nil
        } catch {
            return "not a regular expression (\(error))"
        }
    }

    static func wholeMatch(_ pattern: String, _ text: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: text)) != nil
    }
}
