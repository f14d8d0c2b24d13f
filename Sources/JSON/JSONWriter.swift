// Appends JSON to a byte buffer, member by member; nothing is escaped twice. The buffer may hold secrets (a
// base64 plaintext for a KMS call): the caller takes it with `take()` and wipes it after use. Deterministic:
// `stringMap` sorts its keys by their UTF-8 bytes, and escaping is minimal and fixed — the audit log's hash
// chain covers the bytes as written (docs/audit.md).
import CryptoCore

public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Per open object or array: whether a member has been written (the next needs a comma).
    private var needsComma: [Bool] = []
    /// A key was just written: the next value follows it without a comma.
    private var afterKey = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma.append(false) }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); _ = needsComma.popLast() }
    public mutating func beginArray() { separator(); bytes.append(UInt8(ascii: "[")); needsComma.append(false) }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); _ = needsComma.popLast() }

    public mutating func key(_ name: String) {
        separator()
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    public mutating func string(_ value: String) { separator(); Self.appendString(value, to: &bytes) }
    public mutating func bool(_ value: Bool) { separator(); bytes += Array((value ? "true" : "false").utf8) }
    public mutating func int(_ value: Int64) { separator(); bytes += Array(String(value).utf8) }

    /// A string value holding the base64 of `data`, written straight into the buffer (no intermediate copy
    /// of a secret).
    public mutating func base64String(_ data: some ByteView, alphabet: Base64.Alphabet = .standard, padded: Bool = true) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        Base64.encode(data, into: &bytes, alphabet: alphabet, padded: padded)
        bytes.append(UInt8(ascii: "\""))
    }

    /// An object of string members, keys in UTF-8 byte order.
    public mutating func stringMap(_ map: [String: String]) {
        beginObject()
        for k in map.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            key(k)
            string(map[k] ?? "")
        }
        endObject()
    }

    /// Takes the buffer out (the writer is empty afterwards).
    public mutating func take() -> [UInt8] {
        let out = bytes
        bytes = []
        needsComma = []
        afterKey = false
        return out
    }

    private mutating func separator() {
        if afterKey { afterKey = false; return }
        guard let last = needsComma.indices.last else { return }
        if needsComma[last] { bytes.append(UInt8(ascii: ",")) }
        needsComma[last] = true
    }

    /// `s` as a JSON string: `"` and `\` escaped, \n \r \t by name, other controls and DEL as \u00xx.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [0x5C, 0x22]
            case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0x00..<0x20, 0x7F: out += Array("\\u00".utf8) + Array(Hex.encode([b]).utf8)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
