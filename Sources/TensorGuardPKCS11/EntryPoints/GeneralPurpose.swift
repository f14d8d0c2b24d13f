// C ABI shims: PKCS#11 3.0 §5.4 general-purpose functions. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_Initialize")
public func tgInitialize(_ pInitArgs: UnsafeMutableRawPointer?) -> CK_RV {
    initialize(pInitArgs)
}

@_cdecl("C_Finalize")
public func tgFinalize(_ pReserved: UnsafeMutableRawPointer?) -> CK_RV {
    finalize(pReserved)
}

@_cdecl("C_GetInfo")
public func tgGetInfo(_ pInfo: UnsafeMutablePointer<CK_INFO>?) -> CK_RV {
    shim { module in
        let out = try required(pInfo)
        let info = module.info
        var result = CK_INFO()
        result.cryptokiVersion = ckVersion(info.cryptokiVersion)
        pad(&result.manufacturerID, info.manufacturerID)
        result.flags = info.flags
        pad(&result.libraryDescription, info.libraryDescription)
        result.libraryVersion = ckVersion(info.libraryVersion)
        out.pointee = result
    }
}
