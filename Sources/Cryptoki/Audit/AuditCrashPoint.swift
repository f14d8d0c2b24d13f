// Test mode of the audited calls (debug builds only), like the CLI's (`TestMode` in tg-pkcs11):
// `TG_PKCS11_TEST_CRASH_AT=<point>` kills the process with SIGKILL when an audited call reaches that point, so a test
// stops C_GenerateKey, C_CreateObject, C_DestroyObject, C_WrapKey, ... between the durable pending record, the store
// commit (or the wrapped bytes), the outcome record and the return, deterministically rather than by timing.
// Points are `audit-<event>-<stage>`, stage one of `pending` (the pending record is on disk, nothing done yet),
// `done` (the store committed or the wrapped key was produced; no outcome record yet), `recorded` (the outcome
// record is written; nothing returned yet). A release build compiles this to nothing and ignores the variable.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum AuditCrashPoint {
    static let variable = "TG_PKCS11_TEST_CRASH_AT"

    @inline(__always)
    static func reached(_ event: AuditEventKind, _ stage: String) {
        #if DEBUG
        guard let value = getenv(variable) else { return }
        guard String(cString: value) == "audit-\(event.rawValue)-\(stage)" else { return }
        kill(getpid(), SIGKILL)
        #endif
    }
}
