// One PKCS#11 session: login, objects (find, create, generate, attributes), encrypt and decrypt.
// Closed (C_CloseSession) when released; the module (held strongly) outlives it.
import CP11Kit
import CryptoCore

final class PKCS11Session {
    let module: PKCS11Module
    let slot: CK_SLOT_ID
    let handle: CK_SESSION_HANDLE
    private var open = true

    init(module: PKCS11Module, slot: CK_SLOT_ID, handle: CK_SESSION_HANDLE) {
        self.module = module
        self.slot = slot
        self.handle = handle
    }

    deinit { close() }

    private var fn: CK_FUNCTION_LIST { module.fn }

    func close() {
        guard open else { return }
        open = false
        if let closeSession = fn.C_CloseSession { _ = closeSession(handle) }
    }

    // MARK: Login

    /// C_Login; CKR_USER_ALREADY_LOGGED_IN counts as success (another session of this process logged in).
    func login(userType: CK_USER_TYPE, pin: SecretBytes) throws {
        let login = try entry("C_Login", fn.C_Login)
        let rv = pin.withUnsafeBytes { bytes in
            login(handle, userType, UnsafeMutablePointer(mutating: bytes.bindMemory(to: UInt8.self).baseAddress),
                  CK_ULONG(bytes.count))
        }
        if rv == CK_RV(CKR_USER_ALREADY_LOGGED_IN) { return }
        try check("C_Login", rv)
    }

    func logout() throws {
        try check("C_Logout", entry("C_Logout", fn.C_Logout)(handle))
    }

    /// C_InitPIN (the SO must be logged in on this session).
    func initPIN(_ pin: SecretBytes) throws {
        let initPIN = try entry("C_InitPIN", fn.C_InitPIN)
        let rv = pin.withUnsafeBytes { bytes in
            initPIN(handle, UnsafeMutablePointer(mutating: bytes.bindMemory(to: UInt8.self).baseAddress),
                    CK_ULONG(bytes.count))
        }
        try check("C_InitPIN", rv)
    }

    // MARK: Objects

    /// Every object matching `template` (C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal).
    func findObjects(_ template: [TemplateAttribute], limit: Int = 100_000) throws -> [CK_OBJECT_HANDLE] {
        let findInit = try entry("C_FindObjectsInit", fn.C_FindObjectsInit)
        let find = try entry("C_FindObjects", fn.C_FindObjects)
        let findFinal = try entry("C_FindObjectsFinal", fn.C_FindObjectsFinal)
        try withTemplate(template) { attributes, count in
            try check("C_FindObjectsInit", findInit(handle, attributes, count))
        }
        var result: [CK_OBJECT_HANDLE] = []
        var batch = [CK_OBJECT_HANDLE](repeating: 0, count: 64)
        do {
            while result.count < limit {
                var found: CK_ULONG = 0
                try check("C_FindObjects", batch.withUnsafeMutableBufferPointer {
                    find(handle, $0.baseAddress, CK_ULONG($0.count), &found)
                })
                guard found > 0 else { break }
                guard found <= CK_ULONG(batch.count) else {
                    throw ModuleError.unexpected("C_FindObjects returned \(found) handles for a buffer of \(batch.count)")
                }
                result.append(contentsOf: batch.prefix(Int(found)))
            }
        } catch {
            _ = findFinal(handle)
            throw error
        }
        try check("C_FindObjectsFinal", findFinal(handle))
        return result
    }

    func createObject(_ template: [TemplateAttribute]) throws -> CK_OBJECT_HANDLE {
        let create = try entry("C_CreateObject", fn.C_CreateObject)
        var object: CK_OBJECT_HANDLE = 0
        try withTemplate(template) { attributes, count in
            try check("C_CreateObject", create(handle, attributes, count, &object))
        }
        return object
    }

    func generateKey(mechanism type: CK_MECHANISM_TYPE, _ template: [TemplateAttribute]) throws -> CK_OBJECT_HANDLE {
        let generate = try entry("C_GenerateKey", fn.C_GenerateKey)
        var mechanism = CK_MECHANISM(mechanism: type, pParameter: nil, ulParameterLen: 0)
        var object: CK_OBJECT_HANDLE = 0
        try withTemplate(template) { attributes, count in
            try check("C_GenerateKey", generate(handle, &mechanism, attributes, count, &object))
        }
        return object
    }

    func destroyObject(_ object: CK_OBJECT_HANDLE) throws {
        try check("C_DestroyObject", entry("C_DestroyObject", fn.C_DestroyObject)(handle, object))
    }

    /// One attribute, with a length query first. Sensitive, invalid or unavailable attributes are answered
    /// as `.unavailable`, every other error throws.
    func attribute(_ type: CK_ATTRIBUTE_TYPE, of object: CK_OBJECT_HANDLE) throws -> AttributeValue {
        let get = try entry("C_GetAttributeValue", fn.C_GetAttributeValue)
        var attribute = CK_ATTRIBUTE(type: type, pValue: nil, ulValueLen: 0)
        var rv = get(handle, object, &attribute, 1)
        if rv == CK_RV(CKR_ATTRIBUTE_SENSITIVE) || rv == CK_RV(CKR_ATTRIBUTE_TYPE_INVALID) {
            return .unavailable(rv)
        }
        try check("C_GetAttributeValue", rv)
        let length = attribute.ulValueLen
        if length == PKCS11Constants.unavailableInformation { return .unavailable(CK_RV(CKR_OK)) }
        guard length <= 1 << 26 else {
            throw ModuleError.unexpected("C_GetAttributeValue reported a \(length)-byte attribute")
        }
        guard length > 0 else { return .value([]) }
        var value = [UInt8](repeating: 0, count: Int(length))
        rv = value.withUnsafeMutableBytes { raw in
            attribute.pValue = raw.baseAddress
            attribute.ulValueLen = CK_ULONG(raw.count)
            return get(handle, object, &attribute, 1)
        }
        if rv == CK_RV(CKR_ATTRIBUTE_SENSITIVE) || rv == CK_RV(CKR_ATTRIBUTE_TYPE_INVALID) {
            return .unavailable(rv)
        }
        try check("C_GetAttributeValue", rv)
        guard attribute.ulValueLen <= CK_ULONG(value.count) else {
            throw ModuleError.unexpected("C_GetAttributeValue wrote more than the buffer it was given")
        }
        return .value(Array(value.prefix(Int(attribute.ulValueLen))))
    }

    // MARK: Encrypt / decrypt (single part, mechanisms without parameter)

    func encrypt(mechanism: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE, input: [UInt8]) throws -> [UInt8] {
        let initialize = try entry("C_EncryptInit", fn.C_EncryptInit)
        let encrypt = try entry("C_Encrypt", fn.C_Encrypt)
        var mech = CK_MECHANISM(mechanism: mechanism, pParameter: nil, ulParameterLen: 0)
        try check("C_EncryptInit", initialize(handle, &mech, key))
        return try singlePart("C_Encrypt", input: input) { data, dataLen, out, outLen in
            encrypt(handle, data, dataLen, out, outLen)
        }
    }

    func decrypt(mechanism: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE, input: [UInt8]) throws -> [UInt8] {
        let initialize = try entry("C_DecryptInit", fn.C_DecryptInit)
        let decrypt = try entry("C_Decrypt", fn.C_Decrypt)
        var mech = CK_MECHANISM(mechanism: mechanism, pParameter: nil, ulParameterLen: 0)
        try check("C_DecryptInit", initialize(handle, &mech, key))
        return try singlePart("C_Decrypt", input: input) { data, dataLen, out, outLen in
            decrypt(handle, data, dataLen, out, outLen)
        }
    }

    /// The PKCS#11 §5.2 convention: length query with a NULL output, then the call with a buffer. The
    /// operation stays active between the two; CKR_BUFFER_TOO_SMALL (a module that underestimated) is
    /// retried with the new length.
    private func singlePart(_ name: String, input: [UInt8],
                            _ call: (UnsafeMutablePointer<UInt8>?, CK_ULONG, UnsafeMutablePointer<UInt8>?,
                                     UnsafeMutablePointer<CK_ULONG>) -> CK_RV) throws -> [UInt8] {
        var input = input
        defer { wipe(&input) }
        return try input.withUnsafeMutableBufferPointer { data in
            var length: CK_ULONG = 0
            try check(name, call(data.baseAddress, CK_ULONG(data.count), nil, &length))
            for _ in 0..<3 {
                guard length <= 1 << 34 else { throw ModuleError.unexpected("\(name) asked for \(length) bytes") }
                var output = [UInt8](repeating: 0, count: Int(max(length, 1)))
                let rv = output.withUnsafeMutableBufferPointer { out in
                    call(data.baseAddress, CK_ULONG(data.count), out.baseAddress, &length)
                }
                if rv == CK_RV(CKR_BUFFER_TOO_SMALL) { continue }
                try check(name, rv)
                guard length <= CK_ULONG(output.count) else {
                    throw ModuleError.unexpected("\(name) reported \(length) bytes for a \(output.count)-byte buffer")
                }
                return Array(output.prefix(Int(length)))
            }
            throw PKCS11Error(function: name, rv: CK_RV(CKR_BUFFER_TOO_SMALL))
        }
    }
}
