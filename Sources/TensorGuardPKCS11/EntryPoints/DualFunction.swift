// C ABI shims: §5.13 dual-function cryptographic functions (not supported). The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_DigestEncryptUpdate")
public func tgDigestEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulPartLen: CK_ULONG, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptDigestUpdate")
public func tgDecryptDigestUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_SignEncryptUpdate")
public func tgSignEncryptUpdate(_ hSession: CK_SESSION_HANDLE, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                _ ulPartLen: CK_ULONG, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                _ pulEncryptedPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}

@_cdecl("C_DecryptVerifyUpdate")
public func tgDecryptVerifyUpdate(_ hSession: CK_SESSION_HANDLE, _ pEncryptedPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ ulEncryptedPartLen: CK_ULONG, _ pPart: UnsafeMutablePointer<CK_BYTE>?,
                                  _ pulPartLen: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV {
    unsupported()
}
