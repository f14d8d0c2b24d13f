import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One line of a health report.
public struct PKCS11HealthCheck: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var passed: Bool
    /// What was found (never a PIN or key byte).
    public var detail: String

    public var description: String { "[\(passed ? "ok" : "FAIL")] \(name): \(detail)" }
}

/// What `tg-pkcs11 backend check` prints: module, token, KEK properties, and a wrap/unwrap round trip.
public struct PKCS11HealthReport: Sendable, Equatable, CustomStringConvertible {
    public var modulePath: String
    /// C_GetInfo: manufacturer, library description and version ("" if not reached).
    public var moduleInfo: String = ""
    public var token: PKCS11TokenSelector
    /// Token found: label, serial, model, manufacturer (nil if not reached).
    public var tokenLabel: String?
    public var tokenSerial: String?
    public var tokenModel: String?
    public var tokenManufacturer: String?
    public var kek: PKCS11KEKReference
    public var mechanism: PKCS11WrapMechanism
    /// In order; the first failed one is the cause.
    public var checks: [PKCS11HealthCheck] = []
    /// The first failure as a typed error (what `checkHealth()` throws); nil when healthy.
    public var error: KeyWrapError?

    public var isHealthy: Bool { error == nil && checks.allSatisfy(\.passed) }

    public var description: String {
        var lines = ["pkcs11 backend: module \(modulePath)" + (moduleInfo.isEmpty ? "" : " (\(moduleInfo))"),
                     "  token \(token)" + (tokenLabel.map { " → label '\($0)', serial '\(tokenSerial ?? "")', model '\(tokenModel ?? "")', manufacturer '\(tokenManufacturer ?? "")'" } ?? ""),
                     "  KEK \(kek), mechanism \(mechanism)"]
        lines += checks.map { "  \($0)" }
        lines.append(isHealthy ? "  healthy" : "  NOT healthy: \(error.map { "\($0)" } ?? "a check failed")")
        return lines.joined(separator: "\n")
    }
}
