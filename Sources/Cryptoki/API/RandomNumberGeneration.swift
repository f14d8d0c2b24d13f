// PKCS#11 §5.15 random number generation: C_SeedRandom, C_GenerateRandom (OpenSSL's CSPRNG).
import CP11Kit
import CryptoCore

extension Module {
    /// Accepted and ignored (as SoftHSM2 accepts it): OpenSSL's CSPRNG seeds itself from the OS.
    public func seedRandom(_ session: CK_SESSION_HANDLE, seed: UnsafeRawBufferPointer) throws {
        _ = try self.session(session)
    }

    public func generateRandom(_ handle: CK_SESSION_HANDLE, into buffer: UnsafeMutableRawBufferPointer) throws {
        _ = try session(handle)
        do { try SecureRandom.fill(buffer) } catch { throw ErrorMap.wrap(error, context: "random") }
    }
}
