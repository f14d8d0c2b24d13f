// C ABI shims: §5.9 decryption. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_DecryptInit")
public func tgDecryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                          _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.decryptInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Decrypt")
public func tgDecrypt(_ hSession: CK_SESSION_HANDLE, _ pEncryptedData: UnsafeMutablePointer<CK_BYTE>?,
                      _ ulEncryptedDataLen: CK_ULONG, _ pData: UnsafeMutablePointer<CK_BYTE>?,
                      _ pulDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulDataLen)
        let data = try input(pEncryptedData, ulEncryptedDataLen)
        try finish(module.decrypt(hSession, input: data, output: output(pData, outLen)), outLen)
    }
}

@_cdecl("C_DecryptUpdate")
public func tgDecryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulPartLen)
        let part = try input(pEncryptedPart, ulEncryptedPartLen)
        try finish(module.decryptUpdate(hSession, input: part, output: output(pPart, outLen)), outLen)
    }
}

@_cdecl("C_DecryptFinal")
public func tgDecryptFinal(_ hSession: CK_SESSION_HANDLE, _ pLastPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ pulLastPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_DECRYPT, hSession) { module in
        let outLen = try required(pulLastPartLen)
        try finish(module.decryptFinal(hSession, output: output(pLastPart, outLen)), outLen)
    }
}
