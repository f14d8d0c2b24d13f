import CryptoCore

func hex(_ s: String) -> [UInt8] {
    let chars = Array(s.lowercased().filter { !$0.isWhitespace })
    var out: [UInt8] = []
    var i = 0
    while i + 1 < chars.count {
        let v = UInt8(String(chars[i...i + 1]), radix: 16)
        out.append(v ?? 0)
        i += 2
    }
    return out
}

func hexString(_ b: some ByteView) -> String {
    b.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() }
}

func secret(_ s: String) -> SecretBytes { SecretBytes(copying: hex(s)) }
