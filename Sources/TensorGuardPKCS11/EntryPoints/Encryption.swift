// C ABI shims: §5.8 encryption. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_EncryptInit")
public func tgEncryptInit(_ hSession: CK_SESSION_HANDLE, _ pMechanism: UnsafeMutablePointer<CK_MECHANISM>?,
                          _ hKey: CK_OBJECT_HANDLE) -> CK_RV {
    shim { module in try module.encryptInit(hSession, mechanism: mechanism(pMechanism), key: hKey) }
}

@_cdecl("C_Encrypt")
public func tgEncrypt(_ hSession: CK_SESSION_HANDLE, _ pData: UnsafeMutablePointer<CK_BYTE>?, _ ulDataLen: CK_ULONG,
                      _ pEncryptedData: UnsafeMutablePointer<CK_BYTE>?,
                      _ pulEncryptedDataLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulEncryptedDataLen)
        let data = try input(pData, ulDataLen)
        try finish(module.encrypt(hSession, input: data, output: output(pEncryptedData, outLen)), outLen)
    }
}

@_cdecl("C_EncryptUpdate")
public func tgEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?, _ ulPartLen: CK_ULONG,
                            _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                            _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulEncryptedPartLen)
        let part = try input(pPart, ulPartLen)
        try finish(module.encryptUpdate(hSession, input: part, output: output(pEncryptedPart, outLen)), outLen)
    }
}

@_cdecl("C_EncryptFinal")
public func tgEncryptFinal(_ hSession: CK_SESSION_HANDLE, _ pLastEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                           _ pulLastEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    shim(ending: CKF_ENCRYPT, hSession) { module in
        let outLen = try required(pulLastEncryptedPartLen)
        try finish(module.encryptFinal(hSession, output: output(pLastEncryptedPart, outLen)), outLen)
    }
}
