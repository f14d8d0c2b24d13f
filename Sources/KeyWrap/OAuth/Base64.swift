// Base64 (RFC 4648 §4) and base64url (§5) without Foundation, for JSON bodies, JWTs and PEM.

public enum Base64 {
    public enum Alphabet: Sendable { case standard, url }

    private static let standardTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlTable = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes `count` bytes read through `byte(i)`; `padded` adds '='.
    static func encode(count: Int, alphabet: Alphabet, padded: Bool, byte: (Int) -> UInt8) -> [UInt8] {
        let table = alphabet == .standard ? standardTable : urlTable
        var out: [UInt8] = []
        out.reserveCapacity((count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= count {
            let v = UInt32(byte(i)) << 16 | UInt32(byte(i + 1)) << 8 | UInt32(byte(i + 2))
            out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
            out.append(table[Int(v >> 6 & 63)]); out.append(table[Int(v & 63)])
            i += 3
        }
        let rest = count - i
        if rest == 1 {
            let v = UInt32(byte(i)) << 16
            out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)])
            if padded { out.append(contentsOf: [0x3D, 0x3D]) }
        } else if rest == 2 {
            let v = UInt32(byte(i)) << 16 | UInt32(byte(i + 1)) << 8
            out.append(table[Int(v >> 18 & 63)]); out.append(table[Int(v >> 12 & 63)]); out.append(table[Int(v >> 6 & 63)])
            if padded { out.append(0x3D) }
        }
        return out
    }

    public static func encode(_ bytes: [UInt8], alphabet: Alphabet = .standard, padded: Bool = true) -> [UInt8] {
        encode(count: bytes.count, alphabet: alphabet, padded: padded) { bytes[$0] }
    }

    public static func encodeString(_ bytes: [UInt8], alphabet: Alphabet = .standard, padded: Bool = true) -> String {
        String(decoding: encode(bytes, alphabet: alphabet, padded: padded), as: UTF8.self)
    }

    private static func value(_ c: UInt8, _ alphabet: Alphabet) -> UInt32? {
        switch c {
        case 0x41...0x5A: return UInt32(c - 0x41)
        case 0x61...0x7A: return UInt32(c - 0x61 + 26)
        case 0x30...0x39: return UInt32(c - 0x30 + 52)
        case UInt8(ascii: "+") where alphabet == .standard: return 62
        case UInt8(ascii: "/") where alphabet == .standard: return 63
        case UInt8(ascii: "-") where alphabet == .url: return 62
        case UInt8(ascii: "_") where alphabet == .url: return 63
        default: return nil
        }
    }

    /// Decodes; padding optional; white space (PEM line breaks) skipped when `skipWhitespace`. nil if malformed.
    public static func decode(_ text: [UInt8], alphabet: Alphabet = .standard, skipWhitespace: Bool = false) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var n = 0
        var padding = 0
        for c in text {
            if skipWhitespace && (c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09) { continue }
            if c == 0x3D { padding += 1; continue }
            guard padding == 0, let v = value(c, alphabet) else { return nil }
            acc = acc << 6 | v
            n += 1
            if n == 4 {
                out.append(UInt8(truncatingIfNeeded: acc >> 16)); out.append(UInt8(truncatingIfNeeded: acc >> 8))
                out.append(UInt8(truncatingIfNeeded: acc))
                acc = 0; n = 0
            }
        }
        switch n {
        case 0: break
        case 2: out.append(UInt8(truncatingIfNeeded: acc >> 4))
        case 3: out.append(UInt8(truncatingIfNeeded: acc >> 10)); out.append(UInt8(truncatingIfNeeded: acc >> 2))
        default: return nil
        }
        guard padding <= 2, padding == 0 || (n + padding) % 4 == 0 else { return nil }
        return out
    }

    public static func decode(_ text: String, alphabet: Alphabet = .standard) -> [UInt8]? {
        decode(Array(text.utf8), alphabet: alphabet)
    }
}
