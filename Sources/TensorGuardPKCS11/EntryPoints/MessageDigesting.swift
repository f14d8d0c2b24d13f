// C ABI shims: §5.10 message digesting. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_DigestInit")
public func tgDigestInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?) -> CK_RV {
    shim { module in try module.digestInit(hSession, mechanism: mechanism(pMechanism)) }
}

@_cdecl("C_Digest")
public func tgDigest(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                     _ pDigest: UnsafeMutablePointer<CK_BYTE>?, _ pulDigestLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in
        let outLen = try required(pulDigestLen)
        let data = try input(pData, ulDataLen)
        try finish(module.digest(hSession, input: data, output: output(pDigest, outLen)), outLen)
    }
}

@_cdecl("C_DigestUpdate")
public func tgDigestUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ ulPartLen: CK_ULONG) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in try module.digestUpdate(hSession, input: input(pPart, ulPartLen)) }
}

@_cdecl("C_DigestKey")
public func tgDigestKey(_ hSession: CK_SESSION_HANDLE, _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.digestKey(hSession, key: hKey) }
}

@_cdecl("C_DigestFinal")
public func tgDigestFinal(_ hSession: CK_SESSION_HANDLE, _ pDigest: UnsafeMutablePointer<CK_BYTE>?,
                          _ pulDigestLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DIGEST, hSession) { module in
        let outLen = try required(pulDigestLen)
        try finish(module.digestFinal(hSession, output: output(pDigest, outLen)), outLen)
    }
}
