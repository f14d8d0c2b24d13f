// The PKCS#11 calls the backend makes, on one session of the backend module. Only used with the module
// lock held (HSMModule.withLock). Every call is counted (`HSMCallCounter`) and every NULL entry of the
// function list is a `.misconfigured` error, never a crash. Loops are bounded.
import CP11Kit
import CryptoCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts C_* calls made on behalf of one backend (for tests and statistics).
final class HSMCallCounter: Sendable {
    let calls = Atomic<Int>(0)
    func add() { calls.add(1, ordering: .relaxed) }
    var value: Int { calls.load(ordering: .relaxed) }
}

/// One attribute of a template. Values are copied into buffers that live for the call and are wiped after.
struct HSMAttribute {
    enum Value {
        case ulong(CK_ULONG)
        case bool(Bool)
        case bytes([UInt8])
        case secret(SecretBytes)
    }

    let type: CK_ATTRIBUTE_TYPE
    let value: Value

    init(_ type: UInt, _ value: Value) {
        self.type = CK_ATTRIBUTE_TYPE(type)
        self.value = value
    }
}

/// Builds the C array for one call; buffers are wiped and freed afterwards.
func withHSMTemplate<R>(_ template: [HSMAttribute],
                        _ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R) rethrows -> R {
    var owned: [UnsafeMutableRawBufferPointer] = []
    defer {
        for buffer in owned {
            secureZero(buffer)
            buffer.deallocate()
        }
    }
    func own(_ count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> (UnsafeMutableRawPointer?, CK_ULONG) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        owned.append(buffer)
        fill(buffer)
        return (buffer.baseAddress, CK_ULONG(count))
    }
    var attributes: [CK_ATTRIBUTE] = []
    attributes.reserveCapacity(template.count)
    for item in template {
        var a = CK_ATTRIBUTE()
        a.type = item.type
        switch item.value {
        case .ulong(let v):
            (a.pValue, a.ulValueLen) = own(MemoryLayout<CK_ULONG>.size) { $0.storeBytes(of: v, as: CK_ULONG.self) }
        case .bool(let v):
            (a.pValue, a.ulValueLen) = own(1) { $0.storeBytes(of: CK_BBOOL(v ? CK_TRUE : CK_FALSE), as: CK_BBOOL.self) }
        case .bytes(let v):
            (a.pValue, a.ulValueLen) = own(v.count) { dst in v.withUnsafeBytes { src in dst.copyMemory(from: src) } }
        case .secret(let s):
            (a.pValue, a.ulValueLen) = own(s.count) { dst in s.withUnsafeBytes { src in dst.copyMemory(from: src) } }
        }
        attributes.append(a)
    }
    return try attributes.withUnsafeMutableBufferPointer { try body($0.baseAddress, CK_ULONG($0.count)) }
}

/// A token found in a slot of the backend module.
struct HSMTokenInfo: Sendable, Equatable {
    var slot: CK_SLOT_ID
    var label: String
    var serial: String
    var model: String
    var manufacturer: String
    var flags: CK_FLAGS
}

/// Thin, checked wrappers over the function list. `check` turns any non-OK CK_RV into `HSMCallError`.
struct HSMCalls {
    let module: HSMModule
    let counter: HSMCallCounter

    var fn: CK_FUNCTION_LIST { module.functions }

    /// The entry point, or `.misconfigured` for a NULL entry. Counts one call; functions that call an entry
    /// more than once (size query then fetch, C_FindObjects batches) count the extra calls themselves.
    func entry<F>(_ name: String, _ pointer: F?) throws -> F {
        guard let pointer else {
            throw KeyWrapError.misconfigured("backend module '\(module.path)' has a NULL \(name) entry")
        }
        counter.add()
        return pointer
    }

    func check(_ name: String, _ rv: CK_RV) throws {
        if rv != CK_RV(CKR_OK) { throw HSMCallError(function: name, rv: rv) }
    }

    // MARK: slots and tokens

    func slotList() throws -> [CK_SLOT_ID] {
        let getSlotList = try entry("C_GetSlotList", fn.C_GetSlotList)
        for _ in 0..<4 {
            var count: CK_ULONG = 0
            try check("C_GetSlotList", getSlotList(CK_BBOOL(CK_TRUE), nil, &count))
            guard count > 0 else { return [] }
            guard count <= 4096 else { throw KeyWrapError.unreachable("C_GetSlotList reported \(count) slots") }
            var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
            counter.add()
            let rv = slots.withUnsafeMutableBufferPointer { getSlotList(CK_BBOOL(CK_TRUE), $0.baseAddress, &count) }
            if rv == CK_RV(CKR_BUFFER_TOO_SMALL) { continue }
            try check("C_GetSlotList", rv)
            return Array(slots.prefix(Int(min(count, CK_ULONG(slots.count)))))
        }
        throw HSMCallError(function: "C_GetSlotList", rv: CK_RV(CKR_BUFFER_TOO_SMALL))
    }

    func tokenInfo(_ slot: CK_SLOT_ID) throws -> HSMTokenInfo {
        var info = CK_TOKEN_INFO()
        try check("C_GetTokenInfo", try entry("C_GetTokenInfo", fn.C_GetTokenInfo)(slot, &info))
        return HSMTokenInfo(slot: slot, label: pkcs11Padded(info.label), serial: pkcs11Padded(info.serialNumber),
                            model: pkcs11Padded(info.model), manufacturer: pkcs11Padded(info.manufacturerID), flags: info.flags)
    }

    func moduleInfo() throws -> String {
        var info = CK_INFO()
        try check("C_GetInfo", try entry("C_GetInfo", fn.C_GetInfo)(&info))
        return "\(pkcs11Padded(info.manufacturerID)) \(pkcs11Padded(info.libraryDescription)) "
            + "\(info.libraryVersion.major).\(info.libraryVersion.minor) (Cryptoki \(info.cryptokiVersion.major).\(info.cryptokiVersion.minor))"
    }

    func mechanisms(_ slot: CK_SLOT_ID) throws -> Set<CK_MECHANISM_TYPE> {
        let getList = try entry("C_GetMechanismList", fn.C_GetMechanismList)
        var count: CK_ULONG = 0
        try check("C_GetMechanismList", getList(slot, nil, &count))
        guard count > 0 else { return [] }
        guard count <= 1 << 14 else { throw KeyWrapError.unreachable("C_GetMechanismList reported \(count) mechanisms") }
        var list = [CK_MECHANISM_TYPE](repeating: 0, count: Int(count))
        counter.add()
        try check("C_GetMechanismList", list.withUnsafeMutableBufferPointer { getList(slot, $0.baseAddress, &count) })
        return Set(list.prefix(Int(min(count, CK_ULONG(list.count)))))
    }

    // MARK: sessions

    func openSession(_ slot: CK_SLOT_ID, readWrite: Bool) throws -> CK_SESSION_HANDLE {
        var flags = CK_FLAGS(CKF_SERIAL_SESSION)
        if readWrite { flags |= CK_FLAGS(CKF_RW_SESSION) }
        var handle: CK_SESSION_HANDLE = 0
        try check("C_OpenSession", try entry("C_OpenSession", fn.C_OpenSession)(slot, flags, nil, nil, &handle))
        return handle
    }

    func closeSession(_ session: CK_SESSION_HANDLE) {
        guard let close = try? entry("C_CloseSession", fn.C_CloseSession) else { return }
        _ = close(session)
    }

    /// C_Login as CKU_USER; CKR_USER_ALREADY_LOGGED_IN is success (login state is per application).
    func login(_ session: CK_SESSION_HANDLE, pin: SecretBytes) throws {
        let login = try entry("C_Login", fn.C_Login)
        let rv = pin.withUnsafeBytes { raw in
            login(session, CK_USER_TYPE(CKU_USER),
                  UnsafeMutablePointer(mutating: raw.baseAddress?.assumingMemoryBound(to: CK_UTF8CHAR.self)),
                  CK_ULONG(raw.count))
        }
        if rv == CK_RV(CKR_USER_ALREADY_LOGGED_IN) { return }
        try check("C_Login", rv)
    }

    // MARK: objects

    func find(_ session: CK_SESSION_HANDLE, _ template: [HSMAttribute], limit: Int = 16) throws -> [CK_OBJECT_HANDLE] {
        let findInit = try entry("C_FindObjectsInit", fn.C_FindObjectsInit)
        let find = try entry("C_FindObjects", fn.C_FindObjects)
        let findFinal = try entry("C_FindObjectsFinal", fn.C_FindObjectsFinal)
        try withHSMTemplate(template) { try check("C_FindObjectsInit", findInit(session, $0, $1)) }
        var result: [CK_OBJECT_HANDLE] = []
        var batch = [CK_OBJECT_HANDLE](repeating: 0, count: 16)
        do {
            var first = true
            while result.count < limit {
                if !first { counter.add() }
                first = false
                var found: CK_ULONG = 0
                try check("C_FindObjects", batch.withUnsafeMutableBufferPointer { find(session, $0.baseAddress, CK_ULONG($0.count), &found) })
                guard found > 0 else { break }
                guard found <= CK_ULONG(batch.count) else {
                    throw KeyWrapError.unreachable("C_FindObjects returned \(found) handles for a buffer of \(batch.count)")
                }
                result.append(contentsOf: batch.prefix(Int(found)))
            }
        } catch {
            _ = findFinal(session)
            throw error
        }
        try check("C_FindObjectsFinal", findFinal(session))
        return result
    }

    /// A CK_BBOOL attribute; nil when the module does not answer it (sensitive / invalid / unavailable).
    func bool(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ type: UInt) throws -> Bool? {
        guard let v = try attribute(session, object, type, maxLength: 8) else { return nil }
        return v.count >= 1 ? v.contains { $0 != 0 } : nil
    }

    /// A CK_ULONG attribute; nil when not answered.
    func ulong(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ type: UInt) throws -> CK_ULONG? {
        guard let v = try attribute(session, object, type, maxLength: 16), v.count == MemoryLayout<CK_ULONG>.size else { return nil }
        return v.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
    }

    /// One attribute's bytes (length query first); nil if sensitive, invalid or unavailable.
    func attribute(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ type: UInt, maxLength: Int) throws -> [UInt8]? {
        let get = try entry("C_GetAttributeValue", fn.C_GetAttributeValue)
        var a = CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(type), pValue: nil, ulValueLen: 0)
        var rv = get(session, object, &a, 1)
        if rv == CK_RV(CKR_ATTRIBUTE_SENSITIVE) || rv == CK_RV(CKR_ATTRIBUTE_TYPE_INVALID) { return nil }
        try check("C_GetAttributeValue", rv)
        if a.ulValueLen == ~CK_ULONG(0) { return nil }
        guard a.ulValueLen <= CK_ULONG(maxLength) else {
            throw KeyWrapError.unreachable("C_GetAttributeValue reported a \(a.ulValueLen)-byte attribute")
        }
        var value = [UInt8](repeating: 0, count: Int(a.ulValueLen))
        counter.add()
        rv = value.withUnsafeMutableBytes { raw in
            a.pValue = raw.baseAddress
            a.ulValueLen = CK_ULONG(raw.count)
            return get(session, object, &a, 1)
        }
        if rv == CK_RV(CKR_ATTRIBUTE_SENSITIVE) || rv == CK_RV(CKR_ATTRIBUTE_TYPE_INVALID) { return nil }
        try check("C_GetAttributeValue", rv)
        guard a.ulValueLen <= CK_ULONG(value.count) else {
            throw KeyWrapError.unreachable("C_GetAttributeValue wrote past its buffer")
        }
        return Array(value.prefix(Int(a.ulValueLen)))
    }

    /// CKA_VALUE of a (session) key read into SecretBytes, length queried first (at most `maxLength`).
    func secretValue(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, maxLength: Int) throws -> SecretBytes {
        let get = try entry("C_GetAttributeValue", fn.C_GetAttributeValue)
        var a = CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(CKA_VALUE), pValue: nil, ulValueLen: 0)
        try check("C_GetAttributeValue", get(session, object, &a, 1))
        guard a.ulValueLen > 0, a.ulValueLen <= CK_ULONG(maxLength) else { throw KeyWrapError.integrityFailure }
        let out = SecretBytes(count: Int(a.ulValueLen))
        counter.add()
        let rv = out.withUnsafeMutableBytes { raw -> CK_RV in
            a.pValue = raw.baseAddress
            a.ulValueLen = CK_ULONG(raw.count)
            return get(session, object, &a, 1)
        }
        try check("C_GetAttributeValue", rv)
        guard a.ulValueLen == CK_ULONG(out.count) else { throw KeyWrapError.integrityFailure }
        return out
    }

    func create(_ session: CK_SESSION_HANDLE, _ template: [HSMAttribute]) throws -> CK_OBJECT_HANDLE {
        let create = try entry("C_CreateObject", fn.C_CreateObject)
        var object: CK_OBJECT_HANDLE = 0
        try withHSMTemplate(template) { try check("C_CreateObject", create(session, $0, $1, &object)) }
        return object
    }

    func setAttributes(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, _ template: [HSMAttribute]) throws {
        let set = try entry("C_SetAttributeValue", fn.C_SetAttributeValue)
        try withHSMTemplate(template) { try check("C_SetAttributeValue", set(session, object, $0, $1)) }
    }

    func destroy(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) {
        guard let destroy = try? entry("C_DestroyObject", fn.C_DestroyObject) else { return }
        _ = destroy(session, object)
    }

    func generateKey(_ session: CK_SESSION_HANDLE, mechanism: UInt, _ template: [HSMAttribute]) throws -> CK_OBJECT_HANDLE {
        let generate = try entry("C_GenerateKey", fn.C_GenerateKey)
        var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(mechanism), pParameter: nil, ulParameterLen: 0)
        var object: CK_OBJECT_HANDLE = 0
        try withHSMTemplate(template) { try check("C_GenerateKey", generate(session, &mech, $0, $1, &object)) }
        return object
    }

    func generateKeyPair(_ session: CK_SESSION_HANDLE, mechanism: UInt, publicTemplate: [HSMAttribute],
                         privateTemplate: [HSMAttribute]) throws -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
        let generate = try entry("C_GenerateKeyPair", fn.C_GenerateKeyPair)
        var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(mechanism), pParameter: nil, ulParameterLen: 0)
        var pub: CK_OBJECT_HANDLE = 0
        var priv: CK_OBJECT_HANDLE = 0
        try withHSMTemplate(publicTemplate) { pt, pc in
            try withHSMTemplate(privateTemplate) { st, sc in
                try check("C_GenerateKeyPair", generate(session, &mech, pt, pc, st, sc, &pub, &priv))
            }
        }
        return (pub, priv)
    }

    // MARK: crypto

    /// C_WrapKey with a length query first.
    func wrapKey(_ session: CK_SESSION_HANDLE, mechanism: inout CK_MECHANISM, wrappingKey: CK_OBJECT_HANDLE,
                 key: CK_OBJECT_HANDLE) throws -> [UInt8] {
        let wrap = try entry("C_WrapKey", fn.C_WrapKey)
        return try twoStep("C_WrapKey") { out, len in wrap(session, &mechanism, wrappingKey, key, out, len) }
    }

    func unwrapKey(_ session: CK_SESSION_HANDLE, mechanism: inout CK_MECHANISM, unwrappingKey: CK_OBJECT_HANDLE,
                   wrapped: [UInt8], template: [HSMAttribute]) throws -> CK_OBJECT_HANDLE {
        let unwrap = try entry("C_UnwrapKey", fn.C_UnwrapKey)
        var input = wrapped
        var object: CK_OBJECT_HANDLE = 0
        try withHSMTemplate(template) { t, c in
            try input.withUnsafeMutableBufferPointer { data in
                try check("C_UnwrapKey", unwrap(session, &mechanism, unwrappingKey, data.baseAddress, CK_ULONG(data.count), t, c, &object))
            }
        }
        return object
    }

    /// C_EncryptInit + C_Encrypt (length query, then the call). `input` is secret (the root key).
    func encrypt(_ session: CK_SESSION_HANDLE, mechanism: inout CK_MECHANISM, key: CK_OBJECT_HANDLE,
                 input: SecretBytes) throws -> [UInt8] {
        let initialize = try entry("C_EncryptInit", fn.C_EncryptInit)
        let encrypt = try entry("C_Encrypt", fn.C_Encrypt)
        try check("C_EncryptInit", initialize(session, &mechanism, key))
        return try input.withUnsafeBytes { raw in
            let data = UnsafeMutablePointer(mutating: raw.baseAddress?.assumingMemoryBound(to: UInt8.self))
            return try twoStep("C_Encrypt") { out, len in encrypt(session, data, CK_ULONG(raw.count), out, len) }
        }
    }

    /// C_DecryptInit + C_Decrypt into SecretBytes (the output buffer is wiped on every path).
    func decrypt(_ session: CK_SESSION_HANDLE, mechanism: inout CK_MECHANISM, key: CK_OBJECT_HANDLE,
                 input: [UInt8]) throws -> SecretBytes {
        let initialize = try entry("C_DecryptInit", fn.C_DecryptInit)
        let decrypt = try entry("C_Decrypt", fn.C_Decrypt)
        try check("C_DecryptInit", initialize(session, &mechanism, key))
        var data = input
        var plain = try data.withUnsafeMutableBufferPointer { d in
            try twoStep("C_Decrypt") { out, len in decrypt(session, d.baseAddress, CK_ULONG(d.count), out, len) }
        }
        defer { secureZero(&plain) }
        return SecretBytes(copying: plain)
    }

    /// The §5.2 convention: size query with NULL output, then the call; CKR_BUFFER_TOO_SMALL retried (bounded).
    private func twoStep(_ name: String, _ call: (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<CK_ULONG>) -> CK_RV) throws -> [UInt8] {
        var length: CK_ULONG = 0
        try check(name, call(nil, &length))
        for _ in 0..<3 {
            guard length <= 1 << 16 else { throw KeyWrapError.unreachable("\(name) asked for \(length) bytes") }
            var output = [UInt8](repeating: 0, count: Int(max(length, 1)))
            counter.add()
            let rv = output.withUnsafeMutableBufferPointer { call($0.baseAddress, &length) }
            if rv == CK_RV(CKR_BUFFER_TOO_SMALL) { secureZero(&output); continue }
            try check(name, rv)
            guard length <= CK_ULONG(output.count) else {
                throw KeyWrapError.unreachable("\(name) reported \(length) bytes for a \(output.count)-byte buffer")
            }
            let result = Array(output.prefix(Int(length)))
            secureZero(&output)
            return result
        }
        throw HSMCallError(function: name, rv: CK_RV(CKR_BUFFER_TOO_SMALL))
    }
}

/// A fixed-size blank-padded CK_UTF8CHAR field as a trimmed String.
func pkcs11Padded<T>(_ field: T) -> String {
    withUnsafeBytes(of: field) { raw in
        var bytes = Array(raw)
        while let last = bytes.last, last == 0x20 || last == 0 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
