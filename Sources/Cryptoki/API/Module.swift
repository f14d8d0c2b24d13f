// The whole PKCS#11 surface as Swift methods, one per C entry point, in the order of the C function list.
// The C ABI layer (Sources/TensorGuardPKCS11) converts pointers into these values, calls one method and
// maps a thrown CKRError to its CK_RV. Every method is safe to call from many threads at once.
//
// Contract for output-producing calls: `.lengthQuery` and a too-small buffer leave the operation active
// (answer `.lengthRequired` / `.bufferTooSmall`); success or any error ends a single-part operation
// (PKCS#11 §5.2). Input buffers are the caller's memory, valid during the one call only.
import CP11Kit

public final class Module: @unchecked Sendable {
    /// Loads the configuration (DESIGN §6): `configPath` (from C_Initialize pReserved) when given, else
    /// TENSORGUARD_PKCS11_CONF, $XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml,
    /// /etc/tensorguard-pkcs11/config.yaml, else the built-in default (one `local` token).
    public init(configPath: String?) throws {
        throw CKRError(CKR_GENERAL_ERROR)
    }

    /// C_Finalize: closes every session, zeroises every key held in memory, closes databases.
    public func finalize() {}

    /// In a child process after fork(): zeroise in-memory secrets and drop all state without touching
    /// resources shared with the parent (database connections, backend sessions are abandoned, not closed).
    public func abandonAfterFork() {}

    // MARK: General, slots, tokens
    public var info: ModuleInfo { fatalError("contract stub") }
    public func slotList(tokenPresent: Bool) -> [CK_SLOT_ID] { [] }
    public func slotInfo(_ slot: CK_SLOT_ID) throws -> SlotInfo { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func tokenInfo(_ slot: CK_SLOT_ID) throws -> TokenInfo { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func mechanismList(_ slot: CK_SLOT_ID) throws -> [CK_MECHANISM_TYPE] { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func mechanismInfo(_ slot: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE) throws -> MechanismInfo {
        throw CKRError(CKR_SLOT_ID_INVALID)
    }
    /// `label` is the caller's 32 bytes, blank padded.
    public func initToken(_ slot: CK_SLOT_ID, soPIN: [UInt8], label: [UInt8]) throws { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func initPIN(_ session: CK_SESSION_HANDLE, pin: [UInt8]) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    public func setPIN(_ session: CK_SESSION_HANDLE, oldPIN: [UInt8], newPIN: [UInt8]) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Sessions and login
    public func openSession(_ slot: CK_SLOT_ID, flags: CK_FLAGS) throws -> CK_SESSION_HANDLE { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func closeSession(_ session: CK_SESSION_HANDLE) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    public func closeAllSessions(_ slot: CK_SLOT_ID) throws { throw CKRError(CKR_SLOT_ID_INVALID) }
    public func sessionInfo(_ session: CK_SESSION_HANDLE) throws -> SessionInfo { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    public func login(_ session: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pin: [UInt8]) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func logout(_ session: CK_SESSION_HANDLE) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    /// C_SessionCancel (3.0): ends the operations named by `flags` (CKF_ENCRYPT, CKF_DECRYPT, ...).
    public func cancelOperations(_ session: CK_SESSION_HANDLE, flags: CK_FLAGS) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Objects
    public func createObject(_ session: CK_SESSION_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func copyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func destroyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func objectSize(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws -> CK_ULONG {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    /// One answer per requested type, in order.
    public func attributeValues(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE,
                                types: [CK_ATTRIBUTE_TYPE]) throws -> [AttributeQueryResult] {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func setAttributeValues(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func findObjectsInit(_ session: CK_SESSION_HANDLE, template: [Attribute]) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func findObjects(_ session: CK_SESSION_HANDLE, maxCount: Int) throws -> [CK_OBJECT_HANDLE] {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func findObjectsFinal(_ session: CK_SESSION_HANDLE) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }

    // MARK: Encryption and decryption
    public func encryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func encrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func encryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func encryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func decryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func decrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func decryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func decryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Digests
    public func digestInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    public func digest(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func digestUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func digestKey(_ session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) throws { throw CKRError(CKR_SESSION_HANDLE_INVALID) }
    public func digestFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Signatures and MACs
    public func signInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func sign(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func signUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func signFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func verifyInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    /// Throws CKR_SIGNATURE_INVALID / CKR_SIGNATURE_LEN_RANGE for a bad signature; ends the operation.
    public func verify(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func verifyUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func verifyFinal(_ session: CK_SESSION_HANDLE, signature: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Keys
    public func generateKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func wrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, wrappingKey: CK_OBJECT_HANDLE,
                        key: CK_OBJECT_HANDLE, output: OutputBuffer) throws -> OutputResult {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func unwrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, unwrappingKey: CK_OBJECT_HANDLE,
                          wrappedKey: UnsafeRawBufferPointer, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }

    // MARK: Random
    public func seedRandom(_ session: CK_SESSION_HANDLE, seed: UnsafeRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
    public func generateRandom(_ session: CK_SESSION_HANDLE, into buffer: UnsafeMutableRawBufferPointer) throws {
        throw CKRError(CKR_SESSION_HANDLE_INVALID)
    }
}
