// A backend PKCS#11 module loaded with dlopen: C_GetFunctionList, the C_Initialize/C_Finalize lifecycle,
// fork detection, and the one lock that serialises every call into it from this process.
//
// One HSMModule per module path per process (HSMModuleRegistry), shared by every PKCS11Backend that names
// that path (several tokens, old and new KEK during a rotation). C_Initialize is called once, with
// CKF_OS_LOCKING_OK; CKR_CRYPTOKI_ALREADY_INITIALIZED means another component of the host process already
// initialised the module: we use it and never finalize it. When the last backend using the module goes
// away, the module is finalized (if we initialised it). The handle is never dlclose'd: many modules leave
// threads or atexit handlers behind.
import CP11Kit
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A PKCS#11 call that returned something other than CKR_OK. Internal; mapped to `KeyWrapError` by the backend.
struct HSMCallError: Error, CustomStringConvertible {
    let function: String
    let rv: CK_RV
    var description: String { "\(function) returned \(ReturnValueNames.name(of: rv))" }
}

final class HSMModule: @unchecked Sendable {
    /// Mutable state, only touched with `state` locked.
    struct State {
        /// Whether C_Initialize has succeeded in process `pid`.
        var initialized = false
        /// We called C_Initialize successfully (so we call C_Finalize); false after ALREADY_INITIALIZED.
        var owned = false
        /// The process the initialisation belongs to (a forked child must initialise again).
        var pid: pid_t = 0
        /// Slot found for a token selector last time (verified with C_GetTokenInfo before each use).
        var slotCache: [String: CK_SLOT_ID] = [:]
    }

    let path: String
    // Written once in init, read-only afterwards (the function list is the module's static table).
    private let functionList: UnsafeMutablePointer<CK_FUNCTION_LIST>
    let state = Mutex(State())

    /// dlopen + C_GetFunctionList. Does not initialise (that happens on first use, under the lock).
    init(path: String) throws {
        self.path = path
        guard path.hasPrefix("/") else {
            throw KeyWrapError.misconfigured("backend module path '\(path)' must be absolute")
        }
        guard access(path, F_OK) == 0 else {
            throw KeyWrapError.misconfigured("backend module '\(path)' does not exist")
        }
        // dlopen runs the module's code in the caller's process: only a file nobody else could have replaced.
        if let problem = TrustedFile.problem(path) {
            throw KeyWrapError.misconfigured("refusing to load backend module: \(problem)")
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw KeyWrapError.misconfigured("cannot load backend module '\(path)': \(reason)")
        }
        guard let symbol = dlsym(handle, "C_GetFunctionList") else {
            throw KeyWrapError.misconfigured("'\(path)' is not a PKCS#11 module (no C_GetFunctionList)")
        }
        typealias GetFunctionList = @convention(c) (UnsafeMutablePointer<UnsafeMutablePointer<CK_FUNCTION_LIST>?>?) -> CK_RV
        let getFunctionList = unsafeBitCast(symbol, to: GetFunctionList.self)
        var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
        let rv = getFunctionList(&list)
        guard rv == CK_RV(CKR_OK), let list else {
            throw KeyWrapError.misconfigured("C_GetFunctionList of '\(path)' failed: \(ReturnValueNames.name(of: rv))")
        }
        functionList = list
    }

    deinit {
        // Last user gone: finalize if we own the initialisation of this very process.
        let s = state.withLock { $0 }
        if s.initialized, s.owned, s.pid == getpid(), let finalize = functionList.pointee.C_Finalize {
            _ = finalize(nil)
        }
    }

    var functions: CK_FUNCTION_LIST { functionList.pointee }

    /// Runs `body` with the module lock held and the module initialised in this process. Every backend call
    /// goes through here, so calls are serialised whatever the module's threading flags.
    func withLock<R: Sendable>(_ body: (inout State) throws -> R) throws -> R {
        try state.withLock { s in
            try ensureInitialized(&s)
            return try body(&s)
        }
    }

    /// C_Initialize(CKF_OS_LOCKING_OK) if not done in this process. In a forked child the inherited state is
    /// dropped (sessions and slot cache belong to the parent) and the module is initialised again.
    private func ensureInitialized(_ s: inout State) throws {
        let me = getpid()
        if s.initialized && s.pid == me { return }
        if s.initialized && s.pid != me {
            // Forked child: forget the parent's state. Do not C_Finalize: that is the parent's initialisation.
            s = State()
        }
        guard let initialize = functions.C_Initialize else {
            throw KeyWrapError.misconfigured("backend module '\(path)' has a NULL C_Initialize entry")
        }
        var args = CK_C_INITIALIZE_ARGS()
        args.flags = CK_FLAGS(CKF_OS_LOCKING_OK)
        let rv = withUnsafeMutablePointer(to: &args) { initialize(UnsafeMutableRawPointer($0)) }
        switch rv {
        case CK_RV(CKR_OK):
            s.owned = true
        case CK_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED):
            // Another user of this module in the process (or a module that survived fork without noticing).
            s.owned = false
        default:
            throw KeyWrapError.unreachable("C_Initialize of backend module '\(path)' failed: \(ReturnValueNames.name(of: rv))")
        }
        s.initialized = true
        s.pid = me
    }

    /// Finalizes (if owned) and forgets the initialisation, so the next call initialises again and rescans
    /// slots — the recovery path after the backend token disappeared or the module lost its state.
    /// Caller holds the lock (`s` is the locked state).
    func reset(_ s: inout State) {
        if s.initialized, s.owned, s.pid == getpid(), let finalize = functions.C_Finalize {
            _ = finalize(nil)
        }
        s = State()
    }

    /// Marks the module as not initialised (another component finalized it under us).
    func forgetInitialization(_ s: inout State) {
        s = State()
    }
}

/// One module object per path in the process, alive while some backend holds it.
enum HSMModuleRegistry {
    private struct WeakModule {
        weak var module: HSMModule?
    }

    private static let modules = Mutex<[String: WeakModule]>([:])

    /// The shared module for `path`, loading it if no live backend uses it.
    /// Keyed by the canonical path, so two spellings of one library share one lock and one initialisation.
    static func module(path: String) throws -> HSMModule {
        var key = path
        if let resolved = realpath(path, nil) {
            key = String(cString: resolved)
            free(resolved)
        }
        return try modules.withLock { table in
            if let existing = table[key]?.module { return existing }
            let loaded = try HSMModule(path: path)
            table[key] = WeakModule(module: loaded)
            return loaded
        }
    }
}
