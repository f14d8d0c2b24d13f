// C ABI shims: §5.11–5.12 signing, MACing and verifying. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_SignInit")
public func tgSignInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                       _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.signInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Sign")
public func tgSign(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                   _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in
        let outLen = try required(pulSignatureLen)
        let data = try input(pData, ulDataLen)
        try finish(module.sign(hSession, input: data, output: output(pSignature, outLen)), outLen)
    }
}

@_cdecl("C_SignUpdate")
public func tgSignUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                         _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in try module.signUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_SignFinal")
public func tgSignFinal(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                        _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_SIGN, hSession) { module in
        let outLen = try required(pulSignatureLen)
        try finish(module.signFinal(hSession, output: output(pSignature, outLen)), outLen)
    }
}

@_cdecl("C_SignRecoverInit")
public func tgSignRecoverInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                              _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignRecover")
public func tgSignRecover(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                          _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulSignatureLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyInit")
public func tgVerifyInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                         _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.verifyInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Verify")
public func tgVerify(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                     _ pSignature: UnsafeMutablePointer<CK_BYTE>?, _ ulSignatureLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in
        let data = try input(pData, ulDataLen)
        let signature = try input(pSignature, ulSignatureLen)
        try module.verify(hSession, input: data, signature: signature)
    }
}

@_cdecl("C_VerifyUpdate")
public func tgVerifyUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in try module.verifyUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_VerifyFinal")
public func tgVerifyFinal(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                          _ ulSignatureLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_VERIFY, hSession) { module in try module.verifyFinal(hSession, signature: input(pSignature, ulSignatureLen)) }
}

@_cdecl("C_VerifyRecoverInit")
public func tgVerifyRecoverInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                                _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    unsupported()
}

@_cdecl("C_VerifyRecover")
public func tgVerifyRecover(_ hSession: CK_SESSION_HANDLE, _ pSignature: UnsafeMutablePointer<CK_BYTE>?,
                            _ ulSignatureLen: CK_ULONG, _ pData: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}
