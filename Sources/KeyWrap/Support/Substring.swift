extension StringProtocol {
    /// Whether `needle` occurs in the string, compared as UTF-8 bytes. The stdlib's `contains(_:)` for strings lives
    /// in _StringProcessing, whose regex engine (about 1 MB) would otherwise be linked into the module
    /// (docs/footprint.md). Callers here look for ASCII words, where bytes and characters agree.
    func hasSubstring(_ needle: String) -> Bool {
        let haystack = Array(utf8), pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return true }
        guard haystack.count >= pattern.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start..<(start + pattern.count)].elementsEqual(pattern) {
            return true
        }
        return false
    }
}
