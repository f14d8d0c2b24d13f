// C ABI shims: the functions new in PKCS#11 3.0 (§5.1–5.3 interfaces, §5.17 message-based, login-user, session-cancel). The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_LoginUser")
public func tgLoginUser(_ hSession: CK_SESSION_HANDLE, _ userType: CK_USER_TYPE, _ pPin: UnsafeMutablePointer<CK_UTF8CHAR>?,
                        _ ulPinLen: CK_ULONG, _ pUsername: UnsafeMutablePointer<CK_UTF8CHAR>?,
                        _ ulUsernameLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_SessionCancel")
public func tgSessionCancel(_ hSession: CK_SESSION_HANDLE, _ flags: CK_FLAGS) -> CK_RV {
    shim { module in try module.cancelOperations(hSession, flags: flags) }
}

@_cdecl("C_MessageEncryptInit")
public func tgMessageEncryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                 _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessage")
public func tgEncryptMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                             _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?, _ ulAssociatedDataLen: CK_ULONG,
                             _ pPlaintext: UnsafeMutablePointer<CK_BYTE>?, _ ulPlaintextLen: CK_ULONG,
                             _ pCiphertext: UnsafeMutablePointer<CK_BYTE>?,
                             _ pulCiphertextLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessageBegin")
public func tgEncryptMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                  _ ulParameterLen: CK_ULONG, _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulAssociatedDataLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_EncryptMessageNext")
public func tgEncryptMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG, _ pPlaintextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ ulPlaintextPartLen: CK_ULONG, _ pCiphertextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ pulCiphertextPartLen: UnsafeMutablePointer<CK_ULONG>?, _ flags: CK_FLAGS) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageEncryptFinal")
public func tgMessageEncryptFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageDecryptInit")
public func tgMessageDecryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                 _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessage")
public func tgDecryptMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                             _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?, _ ulAssociatedDataLen: CK_ULONG,
                             _ pCiphertext: UnsafeMutablePointer<CK_BYTE>?, _ ulCiphertextLen: CK_ULONG,
                             _ pPlaintext: UnsafeMutablePointer<CK_BYTE>?,
                             _ pulPlaintextLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessageBegin")
public func tgDecryptMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                  _ ulParameterLen: CK_ULONG, _ pAssociatedData: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulAssociatedDataLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptMessageNext")
public func tgDecryptMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG, _ pCiphertextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ ulCiphertextPartLen: CK_ULONG, _ pPlaintextPart: UnsafeMutablePointer<CK_BYTE>?,
                                 _ pulPlaintextPartLen: UnsafeMutablePointer<CK_ULONG>?, _ flags: CK_FLAGS) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageDecryptFinal")
public func tgMessageDecryptFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageSignInit")
public func tgMessageSignInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                              _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessage")
public func tgSignMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                          _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                          _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessageBegin")
public func tgSignMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                               _ ulParameterLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignMessageNext")
public func tgSignMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                              _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                              _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                              _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageSignFinal")
public func tgMessageSignFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageVerifyInit")
public func tgMessageVerifyInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessage")
public func tgVerifyMessage(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                            _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                            _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessageBegin")
public func tgVerifyMessageBegin(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?,
                                 _ ulParameterLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyMessageNext")
public func tgVerifyMessageNext(_ hSession: CK_SESSION_HANDLE, _ pParameter: UnsafeMutableRawPointer?, _ ulParameterLen: CK_ULONG,
                                _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                                _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    unsupported()
}

@_cdecl("C_MessageVerifyFinal")
public func tgMessageVerifyFinal(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported()
}
