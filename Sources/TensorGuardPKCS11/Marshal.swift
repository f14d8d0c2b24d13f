// The one shape of every shim, and the conversions between caller memory and Cryptoki's Swift values.
//
// The shims themselves are in EntryPoints/, one file per chapter of the PKCS#11 3.0 function list (a C_* name
// leads to its file by the chapter; `grep -rn '"C_Encrypt"' EntryPoints/` finds it). C_GetFunctionList,
// C_GetInterfaceList and C_GetInterface are C (Sources/CPKCS11/function_tables.c). Every shim has one shape:
// initialised? → pointers → Swift values → one Module call → outputs / CK_RV. Swift names carry a `tg` prefix
// so they never shadow the header's C prototypes.
//
// Rules (DESIGN §3): nothing here may trap on caller input. Every CK_ULONG length is converted with
// Int(exactly:) and bounded before memory is touched; a NULL pointer with a nonzero length is
// CKR_ARGUMENTS_BAD; a NULL pointer with a zero length is an empty buffer.
import CP11Kit
import CryptoCore
import Cryptoki

// MARK: Limits on caller-supplied counts (a lying count must not make us read far past an array)

/// Attributes in one template (the standard defines about 150 types; real templates have a few dozen).
let maxTemplateCount = 4096
/// Bytes of one attribute value in a template.
let maxAttributeValueLength = 1 << 24
/// Bytes of a raw mechanism parameter (IVs, key-wrap IVs, ...) and of a GCM IV.
let maxMechanismParameterLength = 1 << 16
/// Bytes of GCM additional authenticated data.
let maxAADLength = 1 << 24
/// Bytes of a PIN; longer is CKR_PIN_LEN_RANGE without being read.
let maxPINLength = 1 << 16
/// Bytes of one input buffer (data, ciphertext, signature, seed, wrapped key) and of one C_GenerateRandom
/// request: far above any real single call, far below what a lying length could make us walk through.
let maxDataLength = 1 << 32

/// PKCS#11 CK_UNAVAILABLE_INFORMATION (the header's cast macro does not import into Swift).
let unavailableInformation = CK_ULONG.max

/// Attribute types whose value is a nested CK_ATTRIBUTE array. (CKA_ALLOWED_MECHANISMS also carries
/// CKF_ARRAY_ATTRIBUTE but holds CK_MECHANISM_TYPEs: it stays bytes.)
let nestedTemplateTypes: Set<CK_ATTRIBUTE_TYPE> = [CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE]

let argumentsBad = CKRError(CKR_ARGUMENTS_BAD)

// MARK: The shim shape

/// Initialised check → `body` (pointer checks, conversion, one Module call, outputs) → CK_RV.
/// `body` reports every failure by throwing; a thrown CKRError is its rv, anything else
/// CKR_GENERAL_ERROR.
@inline(__always)
func shim(_ body: (Module) throws -> Void) -> CK_RV {
    guard let module = enterModule() else { return CKR_CRYPTOKI_NOT_INITIALIZED }
    defer { leaveModule() }
    do {
        try body(module)
        return CKR_OK
    } catch let error as CKRError {
        return error.rv == CKR_OK ? CKR_GENERAL_ERROR : error.rv
    } catch {
        return CKR_GENERAL_ERROR
    }
}

/// The shape for the calls of an active operation (C_Encrypt, C_DigestUpdate, C_VerifyFinal, ...): PKCS#11
/// §5.2 says such a call ends the operation unless it returns CKR_OK for a length query or
/// CKR_BUFFER_TOO_SMALL. Failures Cryptoki reports end it there; a failure found here, before Cryptoki
/// is called (CKR_ARGUMENTS_BAD), ends it through C_SessionCancel's path.
@inline(__always)
func shim(ending operation: CK_FLAGS, _ session: CK_SESSION_HANDLE, _ body: (Module) throws -> Void) -> CK_RV {
    shim { module in
        do {
            try body(module)
        } catch let error as CKRError where error.rv == CKR_ARGUMENTS_BAD {
            try? module.cancelOperations(session, flags: operation)
            throw error
        }
    }
}

/// Entry points this module does not implement: initialised check, then `rv`.
@inline(__always)
func unsupported(_ rv: CK_RV = CKR_FUNCTION_NOT_SUPPORTED) -> CK_RV {
    guard enterModule() != nil else { return CKR_CRYPTOKI_NOT_INITIALIZED }
    leaveModule()
    return rv
}

// MARK: Scalars and pointers

@inline(__always)
func required<T>(_ pointer: T?) throws -> T {
    guard let pointer else { throw argumentsBad }
    return pointer
}

@inline(__always)
func length(_ value: CK_ULONG) throws -> Int {
    guard let count = Int(exactly: value) else { throw argumentsBad }
    return count
}

@inline(__always)
func ulong(_ value: Int) -> CK_ULONG { CK_ULONG(clamping: value) }

/// Caller input bytes valid for the one call.
func input(_ pointer: UnsafeMutablePointer<CK_BYTE>?, _ count: CK_ULONG) throws -> UnsafeRawBufferPointer {
    let n = try length(count)
    if n == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
    guard n <= maxDataLength else { throw argumentsBad }
    return UnsafeRawBufferPointer(start: try required(pointer), count: n)
}

/// A PIN copied out of caller memory straight into `SecretBytes` (wiped when the call is done with it): no array,
/// no String, no other copy on the way down (Token.login → TokenVault take the SecretBytes).
func pin(_ pointer: UnsafeMutablePointer<CK_UTF8CHAR>?, _ count: CK_ULONG) throws -> SecretBytes {
    let n = try length(count)
    // NULL means "use the protected authentication path", which this token does not have (no
    // CKF_PROTECTED_AUTHENTICATION_PATH): CKR_ARGUMENTS_BAD, as SoftHSM2 answers, whatever the length.
    let start = try required(pointer)
    if n == 0 { return SecretBytes(count: 0) }
    guard n <= maxPINLength else { throw CKRError(CKR_PIN_LEN_RANGE) }
    return SecretBytes(copying: UnsafeRawBufferPointer(start: start, count: n))
}

// MARK: Outputs (PKCS#11 §5.2)

/// NULL buffer → length query; otherwise the caller's buffer of *pulLen bytes.
func output(_ pointer: UnsafeMutablePointer<CK_BYTE>?, _ pulLen: UnsafeMutablePointer<CK_ULONG>) throws -> OutputBuffer {
    guard let pointer else { return .lengthQuery }
    return .buffer(UnsafeMutableRawBufferPointer(start: pointer, count: try length(pulLen.pointee)))
}

/// Writes the length the caller must see; too small → CKR_BUFFER_TOO_SMALL with the required length.
func finish(_ result: OutputResult, _ pulLen: UnsafeMutablePointer<CK_ULONG>) throws {
    switch result {
    case .lengthRequired(let n), .written(let n):
        pulLen.pointee = ulong(n)
    case .bufferTooSmall(let required):
        pulLen.pointee = ulong(required)
        throw CKRError(CKR_BUFFER_TOO_SMALL)
    }
}

/// A list answer (slots, mechanisms): NULL → count; too small → count + CKR_BUFFER_TOO_SMALL.
func writeList(_ values: [CK_ULONG], _ pointer: UnsafeMutablePointer<CK_ULONG>?,
               _ pulCount: UnsafeMutablePointer<CK_ULONG>) throws {
    let count = ulong(values.count)
    guard let pointer else {
        pulCount.pointee = count
        return
    }
    guard pulCount.pointee >= count else {
        pulCount.pointee = count
        throw CKRError(CKR_BUFFER_TOO_SMALL)
    }
    for (index, value) in values.enumerated() { pointer[index] = value }
    pulCount.pointee = count
}

// MARK: Templates

/// A caller template (C_CreateObject, C_FindObjectsInit, ...) as Swift values; nested templates of
/// CKA_WRAP_TEMPLATE / CKA_UNWRAP_TEMPLATE / CKA_DERIVE_TEMPLATE one level deep.
func template(_ pointer: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ count: CK_ULONG) throws -> [Attribute] {
    let n = try length(count)
    if n == 0 { return [] }
    guard n <= maxTemplateCount else { throw argumentsBad }
    let start = try required(pointer)
    var attributes: [Attribute] = []
    attributes.reserveCapacity(n)
    for index in 0..<n { attributes.append(try attribute(start[index], nestingAllowed: true)) }
    return attributes
}

/// Zeroes the CKA_VALUE bytes of a template the call is done with (C_CreateObject: an imported key's value). The
/// value is detached from the template first, so the wipe hits its storage in place when Cryptoki kept no reference
/// to it (a key's value moves into SecretBytes, `AttributePolicy.place`); a value Cryptoki still references (a
/// data object's public CKA_VALUE) is copied by the wipe and left intact.
func wipeValues(_ attributes: inout [Attribute]) {
    for index in attributes.indices where attributes[index].type == CKA_VALUE {
        guard case .bytes(var bytes) = attributes[index].value else { continue }
        attributes[index].value = .bytes([])
        secureZero(&bytes)
    }
}

private func attribute(_ raw: CK_ATTRIBUTE, nestingAllowed: Bool) throws -> Attribute {
    let n = try length(raw.ulValueLen)
    guard n <= maxAttributeValueLength else { throw argumentsBad }
    if nestedTemplateTypes.contains(raw.type) {
        guard nestingAllowed, n % MemoryLayout<CK_ATTRIBUTE>.stride == 0 else {
            throw CKRError(CKR_ATTRIBUTE_VALUE_INVALID)
        }
        let count = n / MemoryLayout<CK_ATTRIBUTE>.stride
        guard count <= maxTemplateCount else { throw argumentsBad }
        if count == 0 { return Attribute(type: raw.type, value: .template([])) }
        let base = UnsafeRawPointer(try required(raw.pValue))
        var nested: [Attribute] = []
        nested.reserveCapacity(count)
        for index in 0..<count {
            let element = base.loadUnaligned(fromByteOffset: index * MemoryLayout<CK_ATTRIBUTE>.stride,
                                              as: CK_ATTRIBUTE.self)
            nested.append(try attribute(element, nestingAllowed: false))
        }
        return Attribute(type: raw.type, value: .template(nested))
    }
    if n == 0 { return Attribute(type: raw.type, bytes: []) }
    let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(try required(raw.pValue)), count: n)
    return Attribute(type: raw.type, bytes: Array(bytes))
}

/// C_GetAttributeValue's output pass (PKCS#11 §5.7): every attribute is processed; the rv is the first
/// of CKR_ATTRIBUTE_SENSITIVE / CKR_ATTRIBUTE_TYPE_INVALID / CKR_BUFFER_TOO_SMALL met, else CKR_OK.
func writeAttributeValues(_ results: [AttributeQueryResult], into start: UnsafeMutablePointer<CK_ATTRIBUTE>) -> CK_RV {
    var rv = CKR_OK
    func note(_ failure: CK_RV) { if rv == CKR_OK { rv = failure } }
    for (index, result) in results.enumerated() {
        switch result {
        case .sensitive:
            start[index].ulValueLen = unavailableInformation
            note(CKR_ATTRIBUTE_SENSITIVE)
        case .typeInvalid:
            start[index].ulValueLen = unavailableInformation
            note(CKR_ATTRIBUTE_TYPE_INVALID)
        case .value(.bytes(let bytes)):
            if !writeBytes(bytes, into: &start[index]) { note(CKR_BUFFER_TOO_SMALL) }
        case .secret(let value):
            if !writeBytes(value, into: &start[index]) { note(CKR_BUFFER_TOO_SMALL) }
        case .value(.template(let nested)):
            let stride = MemoryLayout<CK_ATTRIBUTE>.stride
            let (needed, overflow) = nested.count.multipliedReportingOverflow(by: stride)
            guard !overflow else {
                start[index].ulValueLen = unavailableInformation
                note(CKR_GENERAL_ERROR)
                continue
            }
            guard let base = start[index].pValue else {
                start[index].ulValueLen = ulong(needed)
                continue
            }
            guard start[index].ulValueLen >= ulong(needed) else {
                start[index].ulValueLen = unavailableInformation
                note(CKR_BUFFER_TOO_SMALL)
                continue
            }
            let elements = base.assumingMemoryBound(to: CK_ATTRIBUTE.self)
            for (position, element) in nested.enumerated() {
                elements[position].type = element.type
                switch element.value {
                case .bytes(let bytes):
                    if !writeBytes(bytes, into: &elements[position]) { note(CKR_BUFFER_TOO_SMALL) }
                case .template:
                    // Templates nest one level only; Cryptoki never answers deeper.
                    elements[position].ulValueLen = unavailableInformation
                    note(CKR_ATTRIBUTE_TYPE_INVALID)
                }
            }
            start[index].ulValueLen = ulong(needed)
        }
    }
    return rv
}

/// One byte value into a caller attribute: NULL → length; big enough → copy + length; else unavailable.
private func writeBytes(_ bytes: some ByteView, into attribute: inout CK_ATTRIBUTE) -> Bool {
    guard let destination = attribute.pValue else {
        attribute.ulValueLen = ulong(bytes.count)
        return true
    }
    guard attribute.ulValueLen >= ulong(bytes.count) else {
        attribute.ulValueLen = unavailableInformation
        return false
    }
    bytes.withUnsafeBytes { source in
        if let base = source.baseAddress { destination.copyMemory(from: base, byteCount: source.count) }
    }
    attribute.ulValueLen = ulong(bytes.count)
    return true
}

// MARK: Mechanisms

/// pMechanism as a Mechanism: CK_GCM_PARAMS for CKM_AES_GCM (exactly sizeof(CK_GCM_PARAMS) bytes), raw
/// bytes otherwise. Malformed parameters are CKR_MECHANISM_PARAM_INVALID.
func mechanism(_ pointer: UnsafeMutablePointer<CK_MECHANISM>?) throws -> Mechanism {
    let raw = try required(pointer).pointee
    let paramInvalid = CKRError(CKR_MECHANISM_PARAM_INVALID)
    guard let n = Int(exactly: raw.ulParameterLen) else { throw paramInvalid }
    if raw.mechanism == CKM_AES_GCM {
        guard n == MemoryLayout<CK_GCM_PARAMS>.size, let parameter = raw.pParameter else { throw paramInvalid }
        let gcm = UnsafeRawPointer(parameter).loadUnaligned(as: CK_GCM_PARAMS.self)
        let iv = try bytes(gcm.pIv, gcm.ulIvLen, limit: maxMechanismParameterLength, error: paramInvalid)
        let aad = try bytes(gcm.pAAD, gcm.ulAADLen, limit: maxAADLength, error: paramInvalid)
        return Mechanism(type: raw.mechanism, parameter: .gcm(iv: iv, aad: aad, tagBits: UInt(gcm.ulTagBits)))
    }
    if n == 0 { return Mechanism(type: raw.mechanism, parameter: .none) }
    let parameter = try bytes(raw.pParameter, raw.ulParameterLen, limit: maxMechanismParameterLength, error: paramInvalid)
    return Mechanism(type: raw.mechanism, parameter: .bytes(parameter))
}

private func bytes<P>(_ pointer: UnsafeMutablePointer<P>?, _ count: CK_ULONG, limit: Int, error: CKRError) throws -> [UInt8] {
    guard let n = Int(exactly: count), n <= limit else { throw error }
    if n == 0 { return [] }
    guard let pointer else { throw error }
    return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: n))
}

private func bytes(_ pointer: UnsafeMutableRawPointer?, _ count: CK_ULONG, limit: Int, error: CKRError) throws -> [UInt8] {
    guard let n = Int(exactly: count), n <= limit else { throw error }
    if n == 0 { return [] }
    guard let pointer else { throw error }
    return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: n))
}

// MARK: Fixed-width texts and versions

/// Blank-pads `text` into a fixed-width CK_UTF8CHAR array (not NUL terminated), truncating at a
/// character boundary so the field stays valid UTF-8.
func pad<Field>(_ field: inout Field, _ text: String) {
    withUnsafeMutableBytes(of: &field) { buffer in
        for index in buffer.indices { buffer[index] = 0x20 }
        var used = 0
        for character in text {
            let utf8 = character.utf8
            guard utf8.count <= buffer.count - used else { break }
            for byte in utf8 {
                buffer[used] = byte
                used += 1
            }
        }
    }
}

func ckVersion(_ version: Version) -> CK_VERSION { CK_VERSION(major: version.major, minor: version.minor) }
