// A strict, bounded RFC 8259 reader: input length by the caller (the HTTP layer's maximum response size, one
// audit line), nesting by `JSONValue.maximumDepth`. String members named in `secretMembers` (at any depth) are
// unescaped straight into SecretBytes: their bytes are never held in a growing array or a Swift String.
import CryptoCore

struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    let secretMembers: Set<String>
    var index = 0

    static func parse(_ document: some ByteView, secretMembers: Set<String>) throws -> JSONValue {
        try document.withUnsafeBytes { raw in
            var reader = JSONReader(bytes: raw.bindMemory(to: UInt8.self), secretMembers: secretMembers)
            reader.skipSpace()
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.index == reader.bytes.count else { throw reader.fail("trailing data") }
            return value
        }
    }

    func fail(_ reason: String) -> JSONError { JSONError(offset: index, reason: reason) }

    mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func expect(_ literal: String) throws {
        for b in literal.utf8 {
            guard index < bytes.count, bytes[index] == b else { throw fail("expected \(literal)") }
            index += 1
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw fail("nested too deeply") }
        guard index < bytes.count else { throw fail("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return try number()
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        index += 1
        var members: [String: JSONValue] = [:]
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            // Names must be UTF-8 (values keep their bytes).
            guard let name = String(validating: try string(), as: UTF8.self) else { throw fail("member name is not UTF-8") }
            skipSpace()
            try expect(":")
            skipSpace()
            if secretMembers.contains(name), index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                members[name] = .secret(try secretString())
            } else {
                members[name] = try value(depth: depth + 1)
            }
            skipSpace()
            guard index < bytes.count else { throw fail("unexpected end in object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw fail("expected , or }")
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        index += 1
        var items: [JSONValue] = []
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
    }

    /// At a number: its literal text if it has RFC 8259's grammar (-?int frac? exp?, no leading zeros).
    mutating func number() throws -> JSONValue {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        let intDigits = digits()
        guard intDigits > 0 else { throw fail(index == start ? "unexpected character" : "bad number") }
        if intDigits > 1, bytes[index - intDigits] == UInt8(ascii: "0") { throw fail("leading zero in number") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw fail("bad fraction") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw fail("bad exponent") }
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
    }

    /// Skips decimal digits; how many.
    mutating func digits() -> Int {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        return index - start
    }

    /// At an opening quote: the unescaped UTF-8 bytes of the string.
    mutating func string() throws -> [UInt8] {
        var out: [UInt8] = []
        try unescapeString { out.append($0) }
        return out
    }

    /// At an opening quote: the string unescaped into SecretBytes. Its unescaped length is at most its escaped
    /// length, so a first pass over a copy of the reader counts the bytes and a second writes them into the result.
    mutating func secretString() throws -> SecretBytes {
        var length = 0
        var probe = self
        try probe.unescapeString { _ in length += 1 }
        let out = SecretBytes(count: length)
        var filled = 0
        try out.withUnsafeMutableBytes { dst in
            try unescapeString { b in
                if filled < dst.count { dst[filled] = b }
                filled += 1
            }
        }
        guard filled == length else { throw fail("string changed while read") }
        return out
    }

    /// At an opening quote: each unescaped byte of the string, in order; leaves `index` after the closing quote.
    mutating func unescapeString(_ emit: (UInt8) -> Void) throws {
        index += 1
        while index < bytes.count {
            let c = bytes[index]
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                return
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw fail("unexpected end in escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): emit(e)
                case UInt8(ascii: "b"): emit(0x08)
                case UInt8(ascii: "f"): emit(0x0C)
                case UInt8(ascii: "n"): emit(0x0A)
                case UInt8(ascii: "r"): emit(0x0D)
                case UInt8(ascii: "t"): emit(0x09)
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
                    for b in String(Character(u)).utf8 { emit(b) }
                default:
                    throw fail("bad escape")
                }
            default:
                guard c >= 0x20 else { throw fail("control character in string") }
                emit(c)
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
