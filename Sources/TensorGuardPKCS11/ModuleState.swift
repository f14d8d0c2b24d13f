// The one piece of global state of the library: the Module of this process, and the pid it was
// initialised in (fork detection). Every shim takes the reference under the lock and calls the Module
// outside it; Module is thread safe, so concurrent callers never wait on each other here.
//
// The lock is a pthread mutex in Sources/CPKCS11/fork_safety.c rather than Synchronization.Mutex: it is
// held across fork() by pthread_atfork handlers (a child never inherits it locked by a thread it does not
// have), which a Swift Mutex cannot be. See docs/abi.md, "Fork".
import CP11Kit
import CPKCS11
import Cryptoki

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

struct ModuleState {
    var module: Module?
    /// Process that called C_Initialize. A call from another pid comes from a child after fork():
    /// the inherited Module is not this process's and the library is not initialised there.
    var pid: pid_t = 0
}

/// Guarded by tg_state_lock()/tg_state_unlock(); touched only through `withModuleState`.
nonisolated(unsafe) private var moduleState = ModuleState()

@inline(__always)
func withModuleState<R>(_ body: (inout ModuleState) throws -> R) rethrows -> R {
    tg_state_lock()
    defer { tg_state_unlock() }
    return try body(&moduleState)
}

/// Enters the Module of this process: nil when C_Initialize has not succeeded here (never called,
/// finalised, or a child after fork()). A non-nil answer counts as a call inside the module until the
/// caller's `leaveModule()` (fork() waits for such calls to finish, see fork_safety.c).
func enterModule() -> Module? {
    let pid = tg_current_pid()   // no system call per C_* call (fork_safety.c, wipe-on-fork page)
    return withModuleState { state in
        guard state.pid == pid, let module = state.module else { return nil }
        tg_call_enter()
        return module
    }
}

@inline(__always)
func leaveModule() { tg_call_exit() }

/// Configuration path carried in CK_C_INITIALIZE_ARGS.pReserved (p11-kit `x-init-reserved`).
let maxConfigPathLength = 4096

/// C_Initialize. Accepted argument forms (PKCS#11 2.40 §5.4 / 3.0 §5.4): NULL; CKF_OS_LOCKING_OK; the four
/// mutex callbacks; both. In every accepted case the library locks with OS primitives
/// (pthread mutexes, Synchronization.Mutex) and never calls the application's callbacks — see docs/abi.md.
func initialize(_ pInitArgs: UnsafeMutableRawPointer?) -> CK_RV {
    var configPath: String?
    if let pInitArgs {
        let args = pInitArgs.loadUnaligned(as: CK_C_INITIALIZE_ARGS.self)
        let callbacks = [args.CreateMutex != nil, args.DestroyMutex != nil,
                         args.LockMutex != nil, args.UnlockMutex != nil]
        if callbacks.contains(true) && callbacks.contains(false) { return CKR_ARGUMENTS_BAD }
        if let reserved = args.pReserved {
            // Any pointer value may arrive here: copied without dereferencing (caller_memory.c), so an unmapped or
            // unterminated one is CKR_ARGUMENTS_BAD, never a signal in the host.
            var copy = [CChar](repeating: 0, count: maxConfigPathLength)
            var length = 0
            let rc = copy.withUnsafeMutableBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return Int32(TG_CALLER_STRING_UNREADABLE) }
                return tg_copy_caller_string(UnsafeRawPointer(reserved), base, buffer.count, &length)
            }
            guard rc == Int32(TG_CALLER_STRING_OK) else { return CKR_ARGUMENTS_BAD }
            if length > 0 {
                guard let path = copy.withUnsafeBytes({ String(validating: $0.prefix(length), as: UTF8.self) }) else {
                    return CKR_ARGUMENTS_BAD
                }
                configPath = path
            }
        }
    }

    let pid = getpid()
    return withModuleState { state in
        if let existing = state.module {
            if state.pid == pid { return CKR_CRYPTOKI_ALREADY_INITIALIZED }
            // A child after fork(): the parent's Module is not ours to use or to close. Drop its secrets
            // and state without touching what the parent still uses, then start afresh.
            state.module = nil
            state.pid = 0
            existing.abandonAfterFork()
        }
        do {
            // Under the lock so that racing C_Initialize calls see exactly one success.
            state.module = try Module(configPath: configPath)
            state.pid = pid
            return CKR_OK
        } catch let error as CKRError {
            return error.rv == CKR_OK ? CKR_GENERAL_ERROR : error.rv
        } catch {
            return CKR_GENERAL_ERROR
        }
    }
}

/// C_Finalize: pReserved must be NULL.
func finalize(_ pReserved: UnsafeMutableRawPointer?) -> CK_RV {
    let pid = getpid()
    let taken: Module?? = withModuleState { state in
        guard state.pid == pid, let module = state.module else { return .none }
        if pReserved != nil { return .some(nil) }
        state.module = nil
        state.pid = 0
        tg_call_enter()
        return .some(module)
    }
    switch taken {
    case .none: return CKR_CRYPTOKI_NOT_INITIALIZED
    case .some(nil): return CKR_ARGUMENTS_BAD
    case .some(.some(let module)):
        defer { leaveModule() }
        module.finalize()
        return CKR_OK
    }
}
