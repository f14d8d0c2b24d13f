// PKCS#11 §5.4 general-purpose functions: C_Finalize, C_GetInfo (C_Initialize is Module.init).
import CP11Kit

extension Module {
    public var info: ModuleInfo {
        ModuleInfo(cryptokiVersion: Version(2, 40), manufacturerID: ModuleIdentity.manufacturer, flags: 0,
                   libraryDescription: ModuleIdentity.libraryDescription, libraryVersion: ModuleIdentity.version)
    }

    /// C_Finalize: closes every session, zeroises every key held in memory, closes databases.
    public func finalize() {
        let all = sessions.withLock { s in
            let v = Array(s.values)
            s.removeAll()
            return v
        }
        for s in all { s.token.detach(session: s.handle, reason: "C_Finalize") }
        for t in tokens { t.reset() }
    }

    /// In a child process after fork(): zeroise in-memory secrets and drop all state without touching
    /// resources shared with the parent (database connections, backend sessions are abandoned, not closed).
    public func abandonAfterFork() {
        // No lock is waited for here: one held by a parent thread at fork() would never be released.
        _ = sessions.withLockIfAvailable { $0.removeAll() }
        for t in tokens {
            t.resetAfterFork()
            // Never close the parent's SQLite connections from the child: keep the token (and its database
            // handle) alive forever instead of letting deinit close it.
            _ = Unmanaged.passRetained(t)
        }
        Log.shared.abandonAfterFork()
    }
}
