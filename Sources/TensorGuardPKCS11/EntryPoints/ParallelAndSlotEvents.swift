// C ABI shims: §5.16 parallel function management (legacy) and C_WaitForSlotEvent. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_GetFunctionStatus")
public func tgGetFunctionStatus(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported(CKR_FUNCTION_NOT_PARALLEL)
}

@_cdecl("C_CancelFunction")
public func tgCancelFunction(_ hSession: CK_SESSION_HANDLE) -> CK_RV {
    unsupported(CKR_FUNCTION_NOT_PARALLEL)
}

@_cdecl("C_WaitForSlotEvent")
public func tgWaitForSlotEvent(_ flags: CK_FLAGS, _ pSlot: UnsafeMutablePointer<CK_SLOT_ID>?,
                               _ pReserved: UnsafeMutableRawPointer?) -> CK_RV {
    unsupported()
}
