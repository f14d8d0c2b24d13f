// One audit record: a flat JSON object on one line (docs/audit.md). The encoding is deterministic (keys sorted
// by their UTF-8 bytes, no whitespace, minimal escaping) so the same fields always give the same bytes; the
// hash chain itself covers the bytes as written, so verification never re-encodes.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

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
                let digits = Array("0123456789abcdef".utf8)
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                        digits[Int(b >> 4)], digits[Int(b & 0x0F)]]
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
    public static func timestamp(_ time: AuditTime = .now()) -> String {
        let t = time.seconds
        var secs = time_t(t.rounded(.down))
        let millis = Int((t - Double(secs)) * 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int, _ width: Int) -> String {
            let d = String(v)
            return d.utf8.count >= width ? d : String(repeating: "0", count: width - d.utf8.count) + d
        }
        return pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-" + pad(Int(tm.tm_mday), 2)
            + "T" + pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2)
            + "." + pad(min(max(millis, 0), 999), 3) + "Z"
    }

    /// Parses a line as a JSON object; nil when it is not one. Values: String, Int (Double when not an
    /// integer), Bool, [Any], [String: Any], AuditJSONNull.
    public static func parse(_ line: some Collection<UInt8>) -> [String: Any]? {
        var p = JSONReader(Array(line))
        guard let v = p.document() else { return nil }
        return v as? [String: Any]
    }

    /// An integer field of a parsed record.
    public static func int(_ v: Any?) -> Int64? {
        if let i = v as? Int { return Int64(i) }
        if let i = v as? Int64 { return i }
        return nil
    }
}

/// Wall-clock time in seconds since 1970 (CLOCK_REALTIME).
public struct AuditTime: Sendable, Comparable {
    public var seconds: Double
    public init(_ seconds: Double) { self.seconds = seconds }
    public static func now() -> AuditTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return AuditTime(Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9)
    }
    public func since(_ other: AuditTime) -> Double { seconds - other.seconds }
    public static func < (a: AuditTime, b: AuditTime) -> Bool { a.seconds < b.seconds }
}

/// JSON `null` in a parsed record.
public struct AuditJSONNull: Sendable, Equatable {}

/// A strict RFC 8259 reader for the module's own records (a line at a time, nesting limited).
struct JSONReader {
    let b: [UInt8]
    var i = 0
    var depth = 0
    init(_ bytes: [UInt8]) { b = bytes }

    mutating func document() -> Any? {
        skipSpace()
        guard let v = value() else { return nil }
        skipSpace()
        return i == b.count ? v : nil
    }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
    }

    mutating func literal(_ word: String) -> Bool {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else { return false }
        i += w.count
        return true
    }

    mutating func value() -> Any? {
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"): return literal("true") ? true : nil
        case UInt8(ascii: "f"): return literal("false") ? false : nil
        case UInt8(ascii: "n"): return literal("null") ? AuditJSONNull() : nil
        default: return number()
        }
    }

    mutating func object() -> [String: Any]? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { return nil }
        i += 1
        var out: [String: Any] = [:]
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return out }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\""), let k = string() else { return nil }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            guard let v = value() else { return nil }
            out[k] = v
            skipSpace()
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return out }
            return nil
        }
    }

    mutating func array() -> [Any]? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { return nil }
        i += 1
        var out: [Any] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return out }
        while true {
            skipSpace()
            guard let v = value() else { return nil }
            out.append(v)
            skipSpace()
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return out }
            return nil
        }
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= b.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: return nil
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() -> String? {
        i += 1  // the opening quote
        var out: [UInt8] = []
        while i < b.count {
            let c = b[i]
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                // Invalid UTF-8 is refused, as a JSON parser must.
                return String(validating: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard i < b.count else { return nil }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var u = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(u) {
                        guard literal("\\u"), let lo = hex4(), (0xDC00..<0xE000).contains(lo) else { return nil }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(u) {
                        return nil
                    }
                    guard let scalar = Unicode.Scalar(u) else { return nil }
                    out += Array(String(Character(scalar)).utf8)
                default: return nil
                }
            case 0x00..<0x20: return nil
            default: out.append(c)
            }
        }
        return nil
    }

    mutating func number() -> Any? {
        let start = i
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        func digits() -> Int {
            let s = i
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { i += 1 }
            return i - s
        }
        let intDigits = digits()
        guard intDigits > 0 else { return nil }
        if intDigits > 1, b[i - intDigits] == UInt8(ascii: "0") { return nil }
        var integral = true
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            integral = false
            guard digits() > 0 else { return nil }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            integral = false
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { return nil }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if integral, let v = Int(text) { return v }
        return Double(text)
    }
}
