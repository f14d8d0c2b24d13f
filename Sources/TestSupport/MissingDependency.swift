/// Something a test needs is not on this machine: SoftHSM2, OpenSC's pkcs11-tool, moto, the built products, a
/// pseudo-terminal. `make deps` and `make build` provide every one of them, so a test that meets this fails with
/// the message (thrown, XCTest records it as a failure); it never skips, and `make check` cannot pass vacuously.
public struct MissingDependency: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }

    public static let softHSM2 = MissingDependency("SoftHSM2 is not installed (Debian package softhsm2; run `make deps`)")
}
