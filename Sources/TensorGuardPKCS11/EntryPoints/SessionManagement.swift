// C ABI shims: §5.6 session management. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_OpenSession")
public func tgOpenSession(_ slotID: CK_SLOT_ID, _ flags: CK_FLAGS, _ pApplication: UnsafeMutableRawPointer?,
                          _ notify: CK_NOTIFY?, _ phSession: UnsafeMutablePointer<CK_SESSION_HANDLE>?) -> CK_RV {
    // pApplication / notify: the module never calls back (no surrender notifications).
    shim { module in
        let out = try required(phSession)
        out.pointee = try module.openSession(slotID, flags: flags)
    }
}

@_cdecl("C_CloseSession")
public func tgCloseSession(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    shim { module in try module.closeSession(hSession) }
}

@_cdecl("C_CloseAllSessions")
public func tgCloseAllSessions(_ slotID: CK_SLOT_ID) -> CK_RV {
    shim { module in try module.closeAllSessions(slotID) }
}

@_cdecl("C_GetSessionInfo")
public func tgGetSessionInfo(_ hSession: CK_SESSION_HANDLE, _ pInfo: UnsafeMutablePointer<CK_SESSION_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = try module.sessionInfo(hSession)
        var result = CK_SESSION_INFO()
        result.slotID = info.slotID
        result.state = info.state
        result.flags = info.flags
        result.ulDeviceError = info.deviceError
        out.pointee = result
    }
}

@_cdecl("C_GetOperationState")
public func tgGetOperationState(_ hSession: CK_SESSION_HANDLE, _ pOperationState: UnsafeMutablePointer<CK_BYTE>?,
                                _ pulOperationStateLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SetOperationState")
public func tgSetOperationState(_ hSession: CK_SESSION_HANDLE, _ pOperationState: UnsafeMutablePointer<CK_BYTE>?,
                                _ ulOperationStateLen: CK_ULONG, _ hEncryptionKey: CK_OBJECT_HANDLE,
                                _ hAuthenticationKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_Login")
public func tgLogin(_ hSession: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?,
                    _ ulPinLen: CK_ULONG) -> CK_RV {
    shim { module in
        try module.login(hSession, userType: userType, pin: pin(pPin, ulPinLen))
    }
}

@_cdecl("C_Logout")
public func tgLogout(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    shim { module in try module.logout(hSession) }
}
