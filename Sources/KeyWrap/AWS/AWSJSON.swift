// Minimal JSON for the aws-kms wire format (no Foundation): a bounded parser whose chosen "secret"
// string members land in SecretBytes (never in a Swift String), a writer that appends to a byte buffer, and
// base64 (standard and URL alphabets) straight between ByteView and SecretBytes.
import CryptoCore

/// A parsed JSON value. Numbers keep their text.
indirect enum AWSJSONValue: Sendable, Equatable {
    case object([String: AWSJSONValue])
    case array([AWSJSONValue])
    case string(String)
    /// A string member whose key was listed in `secretKeys`: its unescaped UTF-8 bytes.
    case secret(SecretBytes)
    case number(String)
    case bool(Bool)
    case null

    subscript(key: String) -> AWSJSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var secretValue: SecretBytes? {
        if case .secret(let s) = self { return s }
        return nil
    }

    var intValue: Int? {
        if case .number(let n) = self { return Int(n) }
        return nil
    }

    var objectValue: [String: AWSJSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }
}

struct AWSJSONError: Error, Sendable, Equatable, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "malformed JSON at byte \(offset): \(reason)" }
}

enum AWSJSON {
    static let maximumDepth = 32

    /// Parses a complete JSON document. Members named in `secretKeys` (at any depth) whose value is a string
    /// become `.secret(SecretBytes)`. Never echoes document content in errors.
    static func parse(_ bytes: some ByteView, secretKeys: Set<String> = []) throws -> AWSJSONValue {
        try bytes.withUnsafeBytes { raw in
            var parser = Parser(bytes: raw.bindMemory(to: UInt8.self), secretKeys: secretKeys)
            parser.skipSpace()
            let value = try parser.value(depth: 0)
            parser.skipSpace()
            guard parser.index == parser.bytes.count else { throw parser.fail("trailing data") }
            return value
        }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        let secretKeys: Set<String>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, secretKeys: Set<String>) {
            self.bytes = bytes
            self.secretKeys = secretKeys
        }

        func fail(_ reason: String) -> AWSJSONError { AWSJSONError(offset: index, reason: reason) }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for b in literal.utf8 {
                guard index < bytes.count, bytes[index] == b else { throw fail("expected \(literal)") }
                index += 1
            }
        }

        mutating func value(depth: Int) throws -> AWSJSONValue {
            guard depth < AWSJSON.maximumDepth else { throw fail("nested too deeply") }
            guard index < bytes.count else { throw fail("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var members: [String: AWSJSONValue] = [:]
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                    var nameBytes = try stringBytes()
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    secureZero(&nameBytes)
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    if secretKeys.contains(name), index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                        // Reserve the whole remainder up front: no reallocation leaves a partial copy behind.
                        var raw = try stringBytes(reserve: bytes.count - index)
                        members[name] = .secret(SecretBytes(copying: raw))
                        secureZero(&raw)
                    } else {
                        members[name] = try value(depth: depth + 1)
                    }
                    skipSpace()
                    guard index < bytes.count else { throw fail("unexpected end in object") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                    throw fail("expected , or }")
                }
            case UInt8(ascii: "["):
                index += 1
                var items: [AWSJSONValue] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard index < bytes.count else { throw fail("unexpected end in array") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                    throw fail("expected , or ]")
                }
            case UInt8(ascii: "\""):
                let raw = try stringBytes()
                return .string(String(decoding: raw, as: UTF8.self))
            case UInt8(ascii: "t"):
                try expect("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = index
                while index < bytes.count,
                      (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
                        || [UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
                    index += 1
                }
                return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
            default:
                throw fail("unexpected character")
            }
        }

        /// At an opening quote: the unescaped UTF-8 bytes of the string.
        mutating func stringBytes(reserve: Int = 0) throws -> [UInt8] {
            index += 1
            var out: [UInt8] = []
            if reserve > 0 { out.reserveCapacity(reserve) }
            while index < bytes.count {
                let c = bytes[index]
                index += 1
                switch c {
                case UInt8(ascii: "\""):
                    return out
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw fail("unexpected end in escape") }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                                throw fail("lone surrogate")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { throw fail("bad \\u escape") }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default:
                        throw fail("bad escape")
                    }
                default:
                    guard c >= 0x20 else { throw fail("control character in string") }
                    out.append(c)
                }
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                index += 1
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("bad hex digit")
                }
                v = v << 4 | d
            }
            return v
        }
    }
}

/// Appends JSON to a byte buffer. Callers build objects member by member; nothing is escaped twice.
struct AWSJSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma: [Bool] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma.append(false) }
    mutating func endObject() { bytes.append(UInt8(ascii: "}")); _ = needsComma.popLast() }

    mutating func key(_ name: String) {
        separator()
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    mutating func string(_ value: String) { separator(); Self.appendString(value, to: &bytes) }
    mutating func raw(_ json: String) { separator(); bytes.append(contentsOf: Array(json.utf8)) }

    /// A string value holding base64 of `data` (standard alphabet, padded), written straight into the buffer.
    mutating func base64String(_ data: some ByteView, urlSafe: Bool = false) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        AWSBase64.encode(data, into: &bytes, urlSafe: urlSafe, padded: !urlSafe)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func stringMap(_ map: [String: String]) {
        beginObject()
        for k in map.keys.sorted() {
            key(k)
            string(map[k] ?? "")
        }
        endObject()
    }

    /// Takes the buffer out (the writer is empty afterwards).
    mutating func take() -> [UInt8] {
        let out = bytes
        bytes = []
        return out
    }

    private var pendingValue = false

    private mutating func separator() {
        if pendingValue { pendingValue = false; return }
        guard !needsComma.isEmpty else { return }
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let hex = Array("0123456789abcdef".utf8)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

enum AWSBase64 {
    private static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let url = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Appends the base64 text of `data` to `out`.
    static func encode(_ data: some ByteView, into out: inout [UInt8], urlSafe: Bool = false, padded: Bool = true) {
        let table = urlSafe ? url : standard
        data.withUnsafeBytes { raw in
            let n = raw.count
            out.reserveCapacity(out.count + (n + 2) / 3 * 4)
            var i = 0
            while i + 3 <= n {
                let v = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2])
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
                out.append(table[Int(v >> 6 & 63)]); out.append(table[Int(v & 63)])
                i += 3
            }
            let rest = n - i
            if rest == 1 {
                let v = UInt32(raw[i]) << 16
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
                if padded { out.append(contentsOf: [0x3D, 0x3D]) }
            } else if rest == 2 {
                let v = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8
                out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
                out.append(table[Int(v >> 6 & 63)])
                if padded { out.append(0x3D) }
            }
        }
    }

    static func encode(_ data: some ByteView, urlSafe: Bool = false, padded: Bool = true) -> String {
        var out: [UInt8] = []
        encode(data, into: &out, urlSafe: urlSafe, padded: padded)
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes standard or URL-safe base64 (either alphabet, padding optional, no whitespace) into a fresh
    /// SecretBytes. nil if malformed.
    static func decodeSecret(_ text: some ByteView) -> SecretBytes? {
        text.withUnsafeBytes { raw -> SecretBytes? in
            var n = raw.count
            while n > 0 && raw[n - 1] == 0x3D { n -= 1 }
            guard raw.count - n <= 2, n % 4 != 1 else { return nil }
            let outCount = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1)
            let out = SecretBytes(count: outCount)
            let ok = out.withUnsafeMutableBytes { dst -> Bool in
                var acc: UInt32 = 0
                var bits = 0
                var o = 0
                for i in 0..<n {
                    guard let v = value(raw[i]) else { return false }
                    acc = acc << 6 | UInt32(v)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        guard o < dst.count else { return false }
                        dst[o] = UInt8(truncatingIfNeeded: acc >> UInt32(bits))
                        o += 1
                    }
                }
                acc = 0
                return o == dst.count
            }
            return ok ? out : nil
        }
    }

    /// Decodes base64 (ciphertexts, certificates).
    static func decode(_ text: String) -> [UInt8]? {
        decodeSecret(Array(text.utf8)).map { $0.unsafeCopyToArray() }
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"), UInt8(ascii: "-"): return 62
        case UInt8(ascii: "/"), UInt8(ascii: "_"): return 63
        default: return nil
        }
    }
}
