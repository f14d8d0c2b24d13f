// Attribute templates (Swift values → CK_ATTRIBUTE arrays for one call) and attribute values read back.
import CP11Kit
#if canImport(Glibc)
import Glibc
#endif

/// Attribute types and values the system header (p11-kit 0.24) may not define.
enum PKCS11Constants {
    /// CKA_UNIQUE_ID (PKCS#11 3.0).
    static let attributeUniqueID: CK_ATTRIBUTE_TYPE = 0x0000_0004
    /// CK_UNAVAILABLE_INFORMATION.
    static let unavailableInformation: CK_ULONG = ~CK_ULONG(0)
}

/// One attribute of a template.
struct TemplateAttribute {
    enum Value {
        case ulong(CK_ULONG)
        case bool(Bool)
        case bytes([UInt8])
        /// Key material: the buffer is handed to the module in place, never copied.
        case secret(SecretBuffer)
    }

    let type: CK_ATTRIBUTE_TYPE
    let value: Value

    init(_ type: CK_ATTRIBUTE_TYPE, _ value: Value) {
        self.type = type
        self.value = value
    }

    static func ulong(_ type: CK_ATTRIBUTE_TYPE, _ v: CK_ULONG) -> Self { .init(type, .ulong(v)) }
    static func bool(_ type: CK_ATTRIBUTE_TYPE, _ v: Bool) -> Self { .init(type, .bool(v)) }
    static func bytes(_ type: CK_ATTRIBUTE_TYPE, _ v: [UInt8]) -> Self { .init(type, .bytes(v)) }
    static func string(_ type: CK_ATTRIBUTE_TYPE, _ v: String) -> Self { .init(type, .bytes(Array(v.utf8))) }
    static func secret(_ type: CK_ATTRIBUTE_TYPE, _ v: SecretBuffer) -> Self { .init(type, .secret(v)) }
}

/// Builds the C array for one call. Every value buffer lives exactly as long as `body` and is zeroised
/// afterwards; secret buffers are referenced, not copied.
func withTemplate<R>(_ template: [TemplateAttribute],
                     _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R) rethrows -> R {
    var owned: [UnsafeMutableRawBufferPointer] = []
    defer {
        for buffer in owned {
            wipe(buffer)
            buffer.deallocate()
        }
    }
    func own(_ bytes: [UInt8]) -> (UnsafeMutableRawPointer?, CK_ULONG) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        owned.append(buffer)
        bytes.withUnsafeBytes { source in
            if let s = source.baseAddress, source.count > 0 { buffer.baseAddress?.copyMemory(from: s, byteCount: source.count) }
        }
        return (buffer.baseAddress, CK_ULONG(bytes.count))
    }

    var attributes: [CK_ATTRIBUTE] = []
    attributes.reserveCapacity(template.count)
    for item in template {
        var attribute = CK_ATTRIBUTE()
        attribute.type = item.type
        switch item.value {
        case .ulong(let v):
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MemoryLayout<CK_ULONG>.size,
                                                                alignment: MemoryLayout<CK_ULONG>.alignment)
            owned.append(buffer)
            buffer.storeBytes(of: v, as: CK_ULONG.self)
            attribute.pValue = buffer.baseAddress
            attribute.ulValueLen = CK_ULONG(MemoryLayout<CK_ULONG>.size)
        case .bool(let v):
            (attribute.pValue, attribute.ulValueLen) = own([v ? 1 : 0])
        case .bytes(let v):
            (attribute.pValue, attribute.ulValueLen) = own(v)
        case .secret(let s):
            s.withUnsafeBytes { raw in
                attribute.pValue = UnsafeMutableRawPointer(mutating: raw.baseAddress)
                attribute.ulValueLen = CK_ULONG(raw.count)
            }
        }
        attributes.append(attribute)
    }
    // Secret buffers are class instances kept alive by `template` for the duration of the call.
    return try withExtendedLifetime(template) {
        try attributes.withUnsafeMutableBufferPointer { array in
            try body(array.baseAddress, CK_ULONG(array.count))
        }
    }
}

/// What C_GetAttributeValue said about one attribute.
enum AttributeValue: Equatable {
    case value([UInt8])
    /// CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID or CK_UNAVAILABLE_INFORMATION.
    case unavailable(CK_RV)

    var bytes: [UInt8]? {
        if case .value(let b) = self { return b }
        return nil
    }

    /// A CK_ULONG attribute in host byte order.
    var ulong: CK_ULONG? {
        guard let b = bytes, b.count == MemoryLayout<CK_ULONG>.size else { return nil }
        return b.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
    }

    var bool: Bool? {
        guard let b = bytes, b.count == 1 else { return nil }
        return b[0] != 0
    }

    /// A UTF-8 string attribute (CKA_LABEL, CKA_UNIQUE_ID); invalid UTF-8 is repaired, not trusted.
    var string: String? {
        guard let b = bytes else { return nil }
        return String(decoding: b, as: UTF8.self)
    }
}

/// Blank-padded fixed-size PKCS#11 strings (labels, serials) to Swift strings.
func paddedString<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        var bytes = Array(raw)
        while let last = bytes.last, last == 0x20 || last == 0 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A Swift string as a blank-padded 32-byte PKCS#11 label (C_InitToken); nil if longer than 32 bytes.
func paddedLabel(_ label: String) -> [UInt8]? {
    let bytes = Array(label.utf8)
    guard bytes.count <= 32 else { return nil }
    return bytes + Array(repeating: 0x20, count: 32 - bytes.count)
}

