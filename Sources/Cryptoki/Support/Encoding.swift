// Canonical byte encodings of attribute values (the C ABI's native layout: CK_ULONG is 8 bytes, host order;
// CK_BBOOL is 1 byte). Everything stored or compared uses these encodings.
import CP11Kit

enum Encoding {
    static let ulongSize = MemoryLayout<CK_ULONG>.size

    static func ulong(_ value: CK_ULONG) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    static func bool(_ value: Bool) -> [UInt8] { [value ? 1 : 0] }

    /// nil unless exactly `ulongSize` bytes.
    static func decodeULong(_ bytes: [UInt8]) -> CK_ULONG? {
        guard bytes.count == ulongSize else { return nil }
        var value: CK_ULONG = 0
        withUnsafeMutableBytes(of: &value) { dst in
            bytes.withUnsafeBytes { src in dst.copyMemory(from: src) }
        }
        return value
    }

    /// nil unless exactly one byte. Any nonzero byte is true (CK_TRUE is 1; some callers pass 0xFF).
    static func decodeBool(_ bytes: [UInt8]) -> Bool? {
        guard bytes.count == 1 else { return nil }
        return bytes[0] != 0
    }

    /// A CK_ULONG array (CKA_ALLOWED_MECHANISMS).
    static func decodeULongArray(_ bytes: [UInt8]) -> [CK_ULONG]? {
        guard bytes.count % ulongSize == 0 else { return nil }
        var out: [CK_ULONG] = []
        out.reserveCapacity(bytes.count / ulongSize)
        var i = 0
        while i < bytes.count {
            guard let v = decodeULong(Array(bytes[i..<(i + ulongSize)])) else { return nil }
            out.append(v)
            i += ulongSize
        }
        return out
    }

    static func ulongArray(_ values: [CK_ULONG]) -> [UInt8] {
        values.flatMap { ulong($0) }
    }

    /// Little-endian fixed-width integers for our own storage encodings.
    static func appendLE<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    static func readLE<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], at offset: inout Int) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, size <= bytes.count - offset else { return nil }
        var value: T = 0
        for i in 0..<size { value |= T(bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    /// Stored form of a nested template (CKA_WRAP_TEMPLATE ...): count u32, then per attribute type u64,
    /// length u32, bytes. Nested templates inside templates are not allowed (caller validates).
    static func encodeTemplate(_ template: [Attribute]) -> [UInt8] {
        var out: [UInt8] = []
        appendLE(UInt32(truncatingIfNeeded: template.count), to: &out)
        for a in template {
            appendLE(UInt64(a.type), to: &out)
            let bytes: [UInt8]
            if case .bytes(let b) = a.value { bytes = b } else { bytes = [] }
            appendLE(UInt32(truncatingIfNeeded: bytes.count), to: &out)
            out.append(contentsOf: bytes)
        }
        return out
    }

    static func decodeTemplate(_ bytes: [UInt8]) -> [Attribute]? {
        var offset = 0
        guard let count = readLE(UInt32.self, bytes, at: &offset) else { return bytes.isEmpty ? [] : nil }
        var out: [Attribute] = []
        for _ in 0..<count {
            guard let type = readLE(UInt64.self, bytes, at: &offset),
                  let len = readLE(UInt32.self, bytes, at: &offset),
                  Int(len) <= bytes.count - offset else { return nil }
            out.append(Attribute(type: CK_ATTRIBUTE_TYPE(type), bytes: Array(bytes[offset..<(offset + Int(len))])))
            offset += Int(len)
        }
        return offset == bytes.count ? out : nil
    }

    /// Blank-padded fixed-width text (CK_TOKEN_INFO.label) → trimmed string.
    static func trimmedText(_ bytes: [UInt8]) -> String {
        var b = bytes
        while let last = b.last, last == 0x20 || last == 0 { b.removeLast() }
        return String(decoding: b, as: UTF8.self)
    }

}

import CryptoCore

/// The caller's input buffer, handed to CryptoCore without copying (valid during the one call only).
struct RawView: ByteView {
    let buffer: UnsafeRawBufferPointer
    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    var count: Int { buffer.count }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(buffer) }
}
