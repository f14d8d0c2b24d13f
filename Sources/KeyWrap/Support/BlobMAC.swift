// The mac that ends an authenticated backend blob (BlobWriter.swift describes the frame).
import CryptoCore

enum BlobMAC {
    static let length = 32

    /// HMAC-SHA-256(key: rootKey, label || context.aad || frame).
    static func compute(label: [UInt8], rootKey: SecretBytes, context: WrapContext, frame: some ByteView) throws -> [UInt8] {
        do {
            return try HMAC.authenticate(.sha256, key: rootKey, data: label + context.aad + frame.withUnsafeBytes { Array($0) })
        } catch {
            throw KeyWrapError.misconfigured("HMAC unavailable: \(error)")
        }
    }
}
