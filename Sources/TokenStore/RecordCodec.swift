/// Binary layouts of the object columns (docs/storage-format.md §Records).
///
/// Attribute set: `0x01 || u32be count || count × (u64be type || u32be length || value)`, sorted by type.
enum RecordCodec {
    static let attributeSetVersion: UInt8 = 1

    static func encode(_ attributes: [UInt: [UInt8]]) throws -> [UInt8] {
        guard attributes.count <= Int(UInt32.max) else { throw StoreError.invalidArgument("too many attributes") }
        var out: [UInt8] = [attributeSetVersion]
        appendU32(&out, UInt32(attributes.count))
        for type in attributes.keys.sorted() {
            let value = attributes[type] ?? []
            guard value.count <= Int(UInt32.max) else { throw StoreError.invalidArgument("attribute value too large") }
            appendU64(&out, UInt64(type))
            appendU32(&out, UInt32(value.count))
            out.append(contentsOf: value)
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) throws -> [UInt: [UInt8]] {
        var r = Reader(bytes: bytes)
        guard try r.u8() == attributeSetVersion else { throw StoreError.corrupt("attribute set version") }
        let count = Int(try r.u32())
        var out: [UInt: [UInt8]] = [:]
        out.reserveCapacity(min(count, 4096))
        for _ in 0..<count {
            let t = try r.u64()
            guard t <= UInt64(UInt.max) else { throw StoreError.corrupt("attribute type") }
            let len = Int(try r.u32())
            out[UInt(t)] = try r.bytes(len)
        }
        guard r.atEnd else { throw StoreError.corrupt("trailing bytes in attribute set") }
        return out
    }

    static func appendU16(_ out: inout [UInt8], _ v: UInt16) {
        out.append(UInt8(truncatingIfNeeded: v >> 8)); out.append(UInt8(truncatingIfNeeded: v))
    }

    static func appendU32(_ out: inout [UInt8], _ v: UInt32) {
        for s in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }

    static func appendU64(_ out: inout [UInt8], _ v: UInt64) {
        for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(s))) }
    }

    /// `u16be(len) || bytes` (bytes truncated to 65535 — callers validate lengths first).
    static func appendField(_ out: inout [UInt8], _ s: String) {
        let b = Array(s.utf8.prefix(Int(UInt16.max)))
        appendU16(&out, UInt16(b.count))
        out.append(contentsOf: b)
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var atEnd: Bool { offset == bytes.count }

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, n <= bytes.count - offset else { throw StoreError.corrupt("truncated record") }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }
        mutating func u8() throws -> UInt8 { try bytes(1)[0] }
        mutating func u32() throws -> UInt32 { try bytes(4).reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func u64() throws -> UInt64 { try bytes(8).reduce(0) { $0 << 8 | UInt64($1) } }
    }
}

