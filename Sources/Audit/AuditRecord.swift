// One audit record: a flat JSON object on one line (docs/audit.md). The encoding is deterministic (keys sorted
// by their UTF-8 bytes, no whitespace, minimal escaping) so the same fields always give the same bytes; the
// hash chain itself covers the bytes as written, so verification never re-encodes.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore
import Foundation

public enum AuditValue: Sendable, Equatable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case object([String: String])
}

public typealias AuditFields = [String: AuditValue]

public enum AuditEncoding {
    /// `prev` of the first record.
    public static let zeroHash = String(repeating: "0", count: 64)
    public static let formatVersion: Int64 = 1

    /// The record as one line, without the newline.
    public static func encode(_ fields: AuditFields) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for key in fields.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            guard let value = fields[key] else { continue }
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .string(let s): appendString(s, to: &out)
            case .int(let i): out += Array(String(i).utf8)
            case .bool(let b): out += Array((b ? "true" : "false").utf8)
            case .object(let o):
                out.append(UInt8(ascii: "{"))
                for (i, k) in o.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    appendString(k, to: &out)
                    out.append(UInt8(ascii: ":"))
                    appendString(o[k] ?? "", to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x00..<0x20, 0x7F:
                out += Array(String(format: "\\u%04x", Int(b)).utf8)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Lowercase hex SHA-256 of `line` (the record's bytes without the newline).
    public static func hash(_ line: some Collection<UInt8>) -> String {
        let digest = (try? Digest.hash(.sha256, Array(line))) ?? []
        return hex(digest)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func unhex(_ s: String) -> [UInt8]? {
        let c = Array(s.utf8)
        guard c.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(c.count / 2)
        func nibble(_ x: UInt8) -> UInt8? {
            switch x {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return x - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return x - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return x - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var i = 0
        while i < c.count {
            guard let hi = nibble(c[i]), let lo = nibble(c[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// UTC time with milliseconds, e.g. "2026-11-29T10:20:29.123Z" (sorts as text in time order).
    public static func timestamp(_ date: Date = Date()) -> String {
        let t = date.timeIntervalSince1970
        var secs = time_t(t.rounded(.down))
        let millis = Int((t - Double(secs)) * 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                      Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), min(max(millis, 0), 999))
    }

    /// Parses a line as a JSON object; nil when it is not one.
    public static func parse(_ line: some Collection<UInt8>) -> [String: Any]? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line), options: []) else { return nil }
        return obj as? [String: Any]
    }

    /// An integer field of a parsed record (JSONSerialization gives NSNumber / Int).
    public static func int(_ v: Any?) -> Int64? {
        if let i = v as? Int { return Int64(i) }
        if let i = v as? Int64 { return i }
        if let n = v as? NSNumber { return n.int64Value }
        return nil
    }
}
