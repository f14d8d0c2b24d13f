// The one JSON (RFC 8259) of the layers the module links (no Foundation: docs/footprint.md): the cloud
// backends' REST bodies, OAuth and instance-metadata answers (KeyWrap) and the audit log's records (Audit).
// Reading is in JSONReader.swift (secret members land in SecretBytes), writing in JSONWriter.swift.
import CryptoCore

/// A parsed JSON value. Numbers keep their literal text (int64 precision, no floating-point surprises);
/// strings keep their unescaped UTF-8 bytes; a member the reader was told is secret is `.secret`.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string([UInt8])
    /// A string member whose name was listed in `secretMembers`: its unescaped UTF-8 bytes, never in a String.
    case secret(SecretBytes)
    case array([JSONValue])
    case object([String: JSONValue])

    public static let maximumDepth = 32

    /// Parses a whole document (leading/trailing white space allowed). Throws `JSONError` (offset and reason,
    /// never the document's content) if malformed or nested deeper than `maximumDepth`.
    public static func parse(_ bytes: some ByteView, secretMembers: Set<String> = []) throws -> JSONValue {
        try JSONReader.parse(bytes, secretMembers: secretMembers)
    }

    /// `parse` for callers to whom any malformed answer is the same failure. nil if malformed.
    public static func parseIfValid(_ bytes: some ByteView) -> JSONValue? {
        try? JSONReader.parse(bytes, secretMembers: [])
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The string value as text (lossy UTF-8). nil if not a (public) string.
    public var text: String? {
        if case .string(let s) = self { return String(decoding: s, as: UTF8.self) }
        return nil
    }

    /// Raw bytes of a (public) string value.
    public var stringBytes: [UInt8]? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The bytes of a secret member.
    public var secret: SecretBytes? {
        if case .secret(let s) = self { return s }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var object: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// An integer given as a JSON number or — Google's proto3 encoding of int64 — as a decimal string.
    public var int64: Int64? {
        switch self {
        case .number(let n): return Int64(n)
        case .string(let s): return Int64(String(decoding: s, as: UTF8.self))
        default: return nil
        }
    }

    public var int: Int? { int64.flatMap { Int(exactly: $0) } }
}

/// Where and why a document was refused. Never holds document content (it may be a secret).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "malformed JSON at byte \(offset): \(reason)" }
}
