// A loaded PKCS#11 module: dlopen, C_GetFunctionList, C_Initialize (OS locking), and the slot/token
// level calls. Sessions are opened from here (PKCS11Session).
import CP11Kit
import CryptoCore
#if canImport(Glibc)
import Glibc
#endif

struct SlotDescription {
    let id: CK_SLOT_ID
    let description: String
    let manufacturer: String
    let flags: CK_FLAGS

    var tokenPresent: Bool { flags & CK_FLAGS(CKF_TOKEN_PRESENT) != 0 }
}

struct TokenDescription {
    let label: String
    let manufacturer: String
    let model: String
    let serial: String
    let flags: CK_FLAGS
    let maxSessionCount: CK_ULONG
    let sessionCount: CK_ULONG
    let minPINLength: CK_ULONG
    let maxPINLength: CK_ULONG

    var initialized: Bool { flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0 }
    var userPINInitialized: Bool { flags & CK_FLAGS(CKF_USER_PIN_INITIALIZED) != 0 }
}

struct ModuleDescription {
    let cryptokiVersion: (major: UInt8, minor: UInt8)
    let manufacturer: String
    let library: String
    let libraryVersion: (major: UInt8, minor: UInt8)
}

final class PKCS11Module {
    let path: String
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    private let handle: UnsafeMutableRawPointer
    private var initialized = false

    /// Loads the module and calls C_Initialize with CKF_OS_LOCKING_OK.
    init(path: String) throws {
        self.path = path
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw ModuleError.loadFailed(path: path, reason: reason)
        }
        self.handle = handle
        guard let symbol = dlsym(handle, "C_GetFunctionList") else {
            dlclose(handle)
            throw ModuleError.missingSymbol(path: path, symbol: "C_GetFunctionList")
        }
        typealias GetFunctionList = @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>?) -> CK_RV
        let getFunctionList = unsafeBitCast(symbol, to: GetFunctionList.self)
        var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
        let rv = getFunctionList(&list)
        guard rv == CK_RV(CKR_OK) else {
            dlclose(handle)
            throw PKCS11Error(function: "C_GetFunctionList", rv: rv)
        }
        guard let list else {
            dlclose(handle)
            throw ModuleError.unexpected("C_GetFunctionList returned CKR_OK and a NULL list")
        }
        functions = list

        var args = CK_C_INITIALIZE_ARGS()
        args.flags = CK_FLAGS(CKF_OS_LOCKING_OK)
        let initialize = try entry("C_Initialize", list.pointee.C_Initialize)
        let initRV = withUnsafeMutablePointer(to: &args) { initialize(UnsafeMutableRawPointer($0)) }
        guard initRV == CK_RV(CKR_OK) else {
            // Do not dlclose: a module that failed C_Initialize may still hold threads or handlers.
            throw PKCS11Error(function: "C_Initialize", rv: initRV)
        }
        initialized = true
    }

    deinit {
        if initialized, let finalize = functions.pointee.C_Finalize {
            _ = finalize(nil)
        }
        // No dlclose: our module is NODELETE anyway, and other modules may leave atexit handlers behind.
    }

    var fn: CK_FUNCTION_LIST { functions.pointee }

    func info() throws -> ModuleDescription {
        var info = CK_INFO()
        try check("C_GetInfo", entry("C_GetInfo", fn.C_GetInfo)(&info))
        return ModuleDescription(cryptokiVersion: (info.cryptokiVersion.major, info.cryptokiVersion.minor),
                                 manufacturer: paddedString(info.manufacturerID),
                                 library: paddedString(info.libraryDescription),
                                 libraryVersion: (info.libraryVersion.major, info.libraryVersion.minor))
    }

    func slotList(tokenPresent: Bool) throws -> [CK_SLOT_ID] {
        let getSlotList = try entry("C_GetSlotList", fn.C_GetSlotList)
        let present = CK_BBOOL(tokenPresent ? 1 : 0)
        // The count may change between the two calls (slot events); retry on CKR_BUFFER_TOO_SMALL.
        for _ in 0..<4 {
            var count: CK_ULONG = 0
            try check("C_GetSlotList", getSlotList(present, nil, &count))
            guard count > 0 else { return [] }
            guard count < 1 << 20 else { throw ModuleError.unexpected("C_GetSlotList reported \(count) slots") }
            var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
            let rv = slots.withUnsafeMutableBufferPointer { getSlotList(present, $0.baseAddress, &count) }
            if rv == CK_RV(CKR_BUFFER_TOO_SMALL) { continue }
            try check("C_GetSlotList", rv)
            return Array(slots.prefix(Int(min(count, CK_ULONG(slots.count)))))
        }
        throw PKCS11Error(function: "C_GetSlotList", rv: CK_RV(CKR_BUFFER_TOO_SMALL))
    }

    func slotInfo(_ slot: CK_SLOT_ID) throws -> SlotDescription {
        var info = CK_SLOT_INFO()
        try check("C_GetSlotInfo", entry("C_GetSlotInfo", fn.C_GetSlotInfo)(slot, &info))
        return SlotDescription(id: slot, description: paddedString(info.slotDescription),
                               manufacturer: paddedString(info.manufacturerID), flags: info.flags)
    }

    func tokenInfo(_ slot: CK_SLOT_ID) throws -> TokenDescription {
        var info = CK_TOKEN_INFO()
        try check("C_GetTokenInfo", entry("C_GetTokenInfo", fn.C_GetTokenInfo)(slot, &info))
        return TokenDescription(label: paddedString(info.label), manufacturer: paddedString(info.manufacturerID),
                                model: paddedString(info.model), serial: paddedString(info.serialNumber),
                                flags: info.flags, maxSessionCount: info.ulMaxSessionCount,
                                sessionCount: info.ulSessionCount, minPINLength: info.ulMinPinLen,
                                maxPINLength: info.ulMaxPinLen)
    }

    func mechanismList(_ slot: CK_SLOT_ID) throws -> [CK_MECHANISM_TYPE] {
        let getList = try entry("C_GetMechanismList", fn.C_GetMechanismList)
        var count: CK_ULONG = 0
        try check("C_GetMechanismList", getList(slot, nil, &count))
        guard count > 0 else { return [] }
        guard count < 1 << 16 else { throw ModuleError.unexpected("C_GetMechanismList reported \(count) mechanisms") }
        var list = [CK_MECHANISM_TYPE](repeating: 0, count: Int(count))
        try check("C_GetMechanismList", list.withUnsafeMutableBufferPointer { getList(slot, $0.baseAddress, &count) })
        return Array(list.prefix(Int(min(count, CK_ULONG(list.count)))))
    }

    /// C_InitToken. `label` is at most 32 bytes of UTF-8 (blank padded here).
    func initToken(_ slot: CK_SLOT_ID, soPIN: SecretBytes, label: String) throws {
        guard var padded = paddedLabel(label) else {
            throw ModuleError.unexpected("label longer than 32 bytes") // callers validate first
        }
        let initToken = try entry("C_InitToken", fn.C_InitToken)
        let rv = soPIN.withUnsafeBytes { pin in
            padded.withUnsafeMutableBufferPointer { labelBytes in
                initToken(slot, UnsafeMutablePointer(mutating: pin.bindMemory(to: UInt8.self).baseAddress),
                          CK_ULONG(pin.count), labelBytes.baseAddress)
            }
        }
        try check("C_InitToken", rv)
    }

    func openSession(_ slot: CK_SLOT_ID, readWrite: Bool) throws -> PKCS11Session {
        var flags = CK_FLAGS(CKF_SERIAL_SESSION)
        if readWrite { flags |= CK_FLAGS(CKF_RW_SESSION) }
        var handle: CK_SESSION_HANDLE = 0
        try check("C_OpenSession", entry("C_OpenSession", fn.C_OpenSession)(slot, flags, nil, nil, &handle))
        return PKCS11Session(module: self, slot: slot, handle: handle)
    }
}
