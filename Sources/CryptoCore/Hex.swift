/// The project's one hex codec: identifiers, digests, CKA_ID values, the audit chain, operator input.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Lower-case hex, two digits per byte.
    public static func encode<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Even-length hex of either case; nil on anything else. `operatorInput` also accepts what people type or
    /// paste: a leading "0x"/"0X" and ":" between digits ("01:a2").
    public static func decode(_ text: String, operatorInput: Bool = false) -> [UInt8]? {
        var input = Substring(text).utf8[...]
        if operatorInput, input.starts(with: "0x".utf8) || input.starts(with: "0X".utf8) { input = input.dropFirst(2) }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 2)
        var high: UInt8? = nil
        for c in input {
            if operatorInput && c == UInt8(ascii: ":") { continue }
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return high == nil ? out : nil
    }
}
