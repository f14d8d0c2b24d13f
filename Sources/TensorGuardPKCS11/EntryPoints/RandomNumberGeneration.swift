// C ABI shims: §5.15 random number generation. The shape of every shim: Marshal.swift.
import CP11Kit
import Cryptoki

@_cdecl("C_SeedRandom")
public func tgSeedRandom(_ hSession: CK_SESSION_HANDLE, _ pSeed: UnsafeMutablePointer<CK_BYTE>?,
                         _ ulSeedLen: CK_ULONG) -> CK_RV {
    shim { module in try module.seedRandom(hSession, seed: input(pSeed, ulSeedLen)) }
}

@_cdecl("C_GenerateRandom")
public func tgGenerateRandom(_ hSession: CK_SESSION_HANDLE, _ pRandomData: UnsafeMutablePointer<CK_BYTE>?,
                             _ ulRandomLen: CK_ULONG) -> CK_RV {
    shim { module in
        let n = try length(ulRandomLen)
        guard n <= maxDataLength else { throw argumentsBad }
        let buffer = n == 0 ? UnsafeMutableRawBufferPointer(start: nil, count: 0)
                            : UnsafeMutableRawBufferPointer(start: try required(pRandomData), count: n)
        try module.generateRandom(hSession, into: buffer)
    }
}
