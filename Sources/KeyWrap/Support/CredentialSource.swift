// Where a backend's secret comes from (a cloud client secret or key file, an HSM PIN): the one secret source
// of the backends. The value goes straight into SecretBytes; errors name the source, never the value.
import CryptoCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a credential comes from. Read when needed (fixing the file or variable needs no restart).
public enum CredentialSource: Sendable, Equatable, CustomStringConvertible {
    /// Name of an environment variable.
    case environment(String)
    /// Path of a regular file that other users cannot access (mode & 007 == 0). One trailing newline ignored.
    case file(String)

    public var description: String {
        switch self {
        case .environment(let v): return "environment variable \(v)"
        case .file(let p): return "file \(p)"
        }
    }

    /// The longest secret read unless the caller says otherwise (a service-account key file is a few KiB).
    public static let defaultMaximumLength = 64 * 1024

    /// The secret bytes. `what` names the credential in errors ("client secret", "service-account key").
    public func read(_ what: String, maximumLength: Int = CredentialSource.defaultMaximumLength) throws -> SecretBytes {
        switch self {
        case .environment(let name):
            guard let value = getenv(name) else { throw KeyWrapError.misconfigured("\(what): environment variable \(name) is not set") }
            let length = strlen(value)
            guard length > 0 else { throw KeyWrapError.misconfigured("\(what): environment variable \(name) is empty") }
            guard length <= maximumLength else {
                throw KeyWrapError.misconfigured("\(what): environment variable \(name) is longer than \(maximumLength) bytes")
            }
            let out = SecretBytes(count: length)
            out.withUnsafeMutableBytes { dst in if let base = dst.baseAddress { memcpy(base, value, length) } }
            return out
        case .file(let path):
            let file: SecretBytes
            do {
                // Room for the value and a trailing CR LF.
                file = try BoundedFile.readSecret(path, limit: maximumLength + 2) { info in
                    guard info.st_mode & 0o007 == 0 else {
                        throw BoundedFile.Failure.refused("is accessible to other users (mode " + String(info.st_mode & 0o777, radix: 8)
                                                          + "); chmod 600 it")
                    }
                }
            } catch let f as BoundedFile.Failure {
                if case .tooLarge = f { throw KeyWrapError.misconfigured("\(what): file \(path) is longer than \(maximumLength) bytes") }
                throw KeyWrapError.misconfigured("\(what): file \(path) \(f)")
            }
            var length = file.count
            file.withUnsafeBytes { bytes in
                if length > 0 && bytes[length - 1] == 0x0A { length -= 1 }
                if length > 0 && bytes[length - 1] == 0x0D { length -= 1 }
            }
            guard length <= maximumLength else {
                throw KeyWrapError.misconfigured("\(what): file \(path) is longer than \(maximumLength) bytes")
            }
            guard length > 0 else { throw KeyWrapError.misconfigured("\(what): file \(path) is empty") }
            return length == file.count ? file : file.prefix(length)
        }
    }
}
