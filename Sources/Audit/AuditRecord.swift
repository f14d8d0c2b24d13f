// One audit record: a flat JSON object on one line (docs/audit.md). The encoding is deterministic (keys sorted
// by their UTF-8 bytes, no whitespace, minimal escaping) so the same fields always give the same bytes; the
// hash chain itself covers the bytes as written, so verification never re-encodes.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore
import JSON

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
    public static let formatVersion: Int64 = 2

    /// The record as one line, without the newline.
    public static func encode(_ fields: AuditFields) -> [UInt8] {
        var out = JSONWriter()
        out.beginObject()
        for key in fields.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            guard let value = fields[key] else { continue }
            out.key(key)
            switch value {
            case .string(let s): out.string(s)
            case .int(let i): out.int(i)
            case .bool(let b): out.bool(b)
            case .object(let o): out.stringMap(o)
            }
        }
        out.endObject()
        return out.take()
    }

    /// Lowercase hex SHA-256 of `line` (the record's bytes without the newline).
    public static func hash(_ line: some Collection<UInt8>) -> String {
        let digest = (try? Digest.hash(.sha256, Array(line))) ?? []
        return Hex.encode(digest)
    }


    /// UTC time with milliseconds, e.g. "2026-11-29T10:20:29.123Z" (sorts as text in time order).
    public static func timestamp(_ time: AuditTime = .now()) -> String {
        let t = time.seconds
        var secs = time_t(t.rounded(.down))
        let millis = Int((t - Double(secs)) * 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        return (tm.tm_year + 1900).zeroPadded(4) + "-" + (tm.tm_mon + 1).zeroPadded(2) + "-" + tm.tm_mday.zeroPadded(2)
            + "T" + tm.tm_hour.zeroPadded(2) + ":" + tm.tm_min.zeroPadded(2) + ":" + tm.tm_sec.zeroPadded(2)
            + "." + min(max(millis, 0), 999).zeroPadded(3) + "Z"
    }

    /// Parses a line as a JSON object; nil when it is not one (or holds a string that is not UTF-8). Values:
    /// String, Int (Double when not an integer), Bool, [Any], [String: Any], AuditJSONNull.
    public static func parse(_ line: some Collection<UInt8>) -> [String: Any]? {
        guard case .object(let members)? = JSONValue.parseIfValid(Array(line)) else { return nil }
        return object(members)
    }

    private static func object(_ members: [String: JSONValue]) -> [String: Any]? {
        var out: [String: Any] = [:]
        for (k, v) in members {
            guard let value = plain(v) else { return nil }
            out[k] = value
        }
        return out
    }

    private static func plain(_ v: JSONValue) -> Any? {
        switch v {
        case .null: return AuditJSONNull()
        case .bool(let b): return b
        case .number(let text): return Int(text).map { $0 as Any } ?? Double(text)
        case .string(let bytes): return String(validating: bytes, as: UTF8.self)
        case .secret: return nil
        case .array(let items):
            var out: [Any] = []
            for item in items {
                guard let value = plain(item) else { return nil }
                out.append(value)
            }
            return out
        case .object(let members): return object(members)
        }
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
