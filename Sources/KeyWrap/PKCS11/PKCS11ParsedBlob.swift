import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The parsed frame of a version-1 blob.
struct PKCS11ParsedBlob {
    let mechanism: PKCS11WrapMechanism
    let kek: PKCS11KEKReference
    let headerLength: Int
    let payload: [UInt8]
    let macOffset: Int

    init(_ blob: [UInt8]) throws {
        guard blob.count >= 5 + 2 + 32, blob[0] == PKCS11Backend.blobVersion,
              let mechanism = PKCS11WrapMechanism(blobID: blob[1]) else { throw KeyWrapError.integrityFailure }
        let refLength = Int(blob[3]) << 8 | Int(blob[4])
        let refEnd = 5 + refLength
        guard refEnd + 2 <= blob.count,
              let kek = PKCS11KEKReference(kind: blob[2], bytes: blob[5..<refEnd]) else { throw KeyWrapError.integrityFailure }
        let payloadLength = Int(blob[refEnd]) << 8 | Int(blob[refEnd + 1])
        let payloadStart = refEnd + 2
        guard payloadLength > 0, payloadStart + payloadLength + 32 == blob.count else { throw KeyWrapError.integrityFailure }
        self.mechanism = mechanism
        self.kek = kek
        self.headerLength = refEnd
        self.payload = Array(blob[payloadStart..<(payloadStart + payloadLength)])
        self.macOffset = payloadStart + payloadLength
    }
}
