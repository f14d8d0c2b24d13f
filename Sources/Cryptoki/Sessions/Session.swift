// A session: its token, read/write flag and the operation slots (one active operation per type, PKCS#11 §5.2).
// Each session has its own lock, held for the duration of one call on that session only.
import CP11Kit
import Synchronization

struct FindState: Sendable {
    var handles: [CK_OBJECT_HANDLE]
    var position = 0
}

/// One slot per operation type. `@unchecked Sendable`: the crypto contexts inside are only touched under the
/// session's lock.
struct Operations: @unchecked Sendable {
    var find: FindState?
    var encrypt: ActiveCipher?
    var decrypt: ActiveCipher?
    var digest: DigestOperation?
    var sign: MACOperation?
    var verify: MACOperation?

    /// C_SessionCancel. `flags` 0 (no operation named) cancels every active operation, as pkcs11-check expects.
    mutating func cancel(_ flags: CK_FLAGS) {
        if flags == 0 {
            self = Operations()
            return
        }
        if flags & CKF_ENCRYPT != 0 { encrypt = nil }
        if flags & CKF_DECRYPT != 0 { decrypt = nil }
        if flags & CKF_DIGEST != 0 { digest = nil }
        if flags & CKF_SIGN != 0 { sign = nil }
        if flags & CKF_VERIFY != 0 { verify = nil }
        if flags & Session.findObjectsFlag != 0 { find = nil }
    }

    var anyActive: Bool {
        find != nil || encrypt != nil || decrypt != nil || digest != nil || sign != nil || verify != nil
    }
}

final class Session: Sendable {
    /// CKF_FIND_OBJECTS (PKCS#11 3.0, C_SessionCancel).
    static let findObjectsFlag: CK_FLAGS = 0x40

    let handle: CK_SESSION_HANDLE
    let token: Token
    let readWrite: Bool
    let ops = Mutex<Operations>(Operations())

    init(handle: CK_SESSION_HANDLE, token: Token, readWrite: Bool) {
        self.handle = handle
        self.token = token
        self.readWrite = readWrite
    }

    var access: Access { token.access(session: handle, readWrite: readWrite) }

    func info() -> SessionInfo {
        let state: CK_STATE
        switch token.role {
        case .so?: state = CKS_RW_SO_FUNCTIONS
        case .user?: state = readWrite ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS
        case nil: state = readWrite ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION
        }
        return SessionInfo(slotID: token.slotID, state: state,
                           flags: CKF_SERIAL_SESSION | (readWrite ? CKF_RW_SESSION : 0), deviceError: 0)
    }
}
