// How the cloud KMS backends keep a token's anchor (docs/storage-format.md §Rollback) in the metadata of their key:
// AWS KMS tags and Azure Key Vault tags hold it as base64 under "tg-anchor-<token uuid>"; Cloud KMS labels allow
// only [a-z0-9_-]{0,63}, so there it is lowercase hex split over "tg-anchor-<token uuid>-0", "-1", …
// A KMS has no create-then-destroy: one value per token, replaced by one write of the key's metadata.
import CryptoCore
import JSON

enum KMSAnchorMetadata {
    /// The anchor slot is 128 bytes; nothing longer is written.
    static let maximumLength = 128
    /// Hex characters per Cloud KMS label value (a label value holds at most 63).
    static let hexChunk = 62

    static func name(_ tokenUUID: String) -> String { "tg-anchor-\(tokenUUID)" }

    static func checkLength(_ value: [UInt8]) throws {
        guard !value.isEmpty, value.count <= maximumLength else {
            throw KeyWrapError.misconfigured("anchor value of \(value.count) bytes (1...\(maximumLength))")
        }
    }

    // MARK: tags (AWS, Azure): one base64 value

    static func tagValue(_ value: [UInt8]) -> String { Base64.encodeString(value) }

    /// The value of `tags[name(uuid)]` as a one-element list, [] when absent or not base64 of 1...128 bytes.
    static func fromTags(_ tags: [String: String], tokenUUID: String) -> [[UInt8]] {
        guard let text = tags[name(tokenUUID)], let value = Base64.decode(text), !value.isEmpty,
              value.count <= maximumLength else { return [] }
        return [value]
    }

    // MARK: labels (GCP): hex chunks

    /// "<name>-0" … "<name>-n": every chunk but the last exactly `hexChunk` characters, the last shorter (possibly
    /// empty), so a missing chunk — the last one included — is detected on read.
    static func labels(_ value: [UInt8], tokenUUID: String) -> [String: String] {
        let hex = Array(Hex.encode(value).utf8)
        var out: [String: String] = [:]
        var i = 0
        var start = 0
        while true {
            let end = min(start + hexChunk, hex.count)
            out["\(name(tokenUUID))-\(i)"] = String(decoding: hex[start..<end], as: UTF8.self)
            if end - start < hexChunk { break }
            start = end
            i += 1
        }
        return out
    }

    static func isOurLabel(_ key: String, tokenUUID: String) -> Bool {
        let prefix = name(tokenUUID) + "-"
        guard key.hasPrefix(prefix) else { return false }
        let index = key.utf8.dropFirst(prefix.utf8.count)
        return !index.isEmpty && index.allSatisfy { (0x30...0x39).contains($0) }
    }

    /// The value reassembled from `labels`, as a one-element list; [] when there are none, or a chunk is missing,
    /// misplaced or not lowercase hex.
    static func fromLabels(_ labels: [String: String], tokenUUID: String) -> [[UInt8]] {
        var chunks: [Int: String] = [:]
        for (k, v) in labels where isOurLabel(k, tokenUUID: tokenUUID) {
            guard let i = Int(k.dropFirst(name(tokenUUID).count + 1)), i < 64 else { return [] }
            chunks[i] = v
        }
        guard !chunks.isEmpty else { return [] }
        var hex = ""
        for i in 0..<chunks.count {
            guard let c = chunks[i], c.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return [] }
            guard i == chunks.count - 1 ? c.utf8.count < hexChunk : c.utf8.count == hexChunk else { return [] }
            hex += c
        }
        guard let value = Hex.decode(hex), !value.isEmpty, value.count <= maximumLength else { return [] }
        return [value]
    }

    /// `labels` with ours for `tokenUUID` replaced by `value`'s (the others kept).
    static func replacingLabels(_ labels: [String: String], _ value: [UInt8], tokenUUID: String) -> [String: String] {
        labels.filter { !isOurLabel($0.key, tokenUUID: tokenUUID) }.merging(self.labels(value, tokenUUID: tokenUUID)) { $1 }
    }

    /// A string map (tags, labels) of a JSON object; members that are not strings are dropped.
    static func stringMap(_ value: [String: JSONValue]?) -> [String: String] {
        (value ?? [:]).compactMapValues { $0.text }
    }
}

extension KMSAnchorMetadata {
    /// Runs `body`; a KeyWrapError it throws has every occurrence of `hidden` (the value written, as sent) cut out of
    /// its message: a service that echoes a rejected tag or label never puts it into a log line.
    static func hiding<R>(_ hidden: [String], _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as KeyWrapError {
            func cut(_ m: String) -> String {
                hidden.filter { $0.utf8.count >= 8 }.reduce(m) { text, h in
                    var out = ""
                    var rest = Substring(text)
                    while let r = rest.range(ofLiteral: h) {
                        out += rest[rest.startIndex..<r.lowerBound] + "<anchor value>"
                        rest = rest[r.upperBound...]
                    }
                    return out + rest
                }
            }
            switch e {
            case .unreachable(let m): throw KeyWrapError.unreachable(cut(m))
            case .removed(let m): throw KeyWrapError.removed(cut(m))
            case .authenticationFailed(let m): throw KeyWrapError.authenticationFailed(cut(m))
            case .keyNotFound(let m): throw KeyWrapError.keyNotFound(cut(m))
            case .policyViolation(let m): throw KeyWrapError.policyViolation(cut(m))
            case .misconfigured(let m): throw KeyWrapError.misconfigured(cut(m))
            case .integrityFailure: throw e
            }
        }
    }
}
