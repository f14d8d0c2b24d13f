import COpenSSL
import CSecureMemory

/// Read-only access to contiguous bytes. `[UInt8]`, `ArraySlice<UInt8>` and `SecretBytes` conform,
/// so every CryptoCore entry point accepts either public arrays or secret buffers without copying.
public protocol ByteView {
    var count: Int { get }
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ByteView where Element == UInt8 {}
extension ArraySlice: ByteView where Element == UInt8 {}

/// An owned buffer of secret bytes (keys, PIN-derived keys, unsealed attribute values).
///
/// The memory is allocated outside the Swift array machinery (so it is never silently copied by CoW) and is
/// wiped with `OPENSSL_cleanse` when the object is deallocated. Equality is constant-time in the contents
/// (lengths are not secret). Mutate only through `withUnsafeMutableBytes` before the value is shared across
/// threads; after that treat it as immutable (that is what makes the `Sendable` conformance sound).
public final class SecretBytes: ByteView, Equatable, @unchecked Sendable, CustomStringConvertible {
    private let pointer: UnsafeMutableRawPointer
    /// Number of secret bytes.
    public let count: Int
    /// In the locked arena (CSecureMemory: mlock'ed, not dumped, wiped in a fork child) rather than the heap.
    public let isLocked: Bool

    /// `count` zero bytes (negative counts are treated as 0).
    public init(count: Int) {
        let n = max(0, count)
        self.count = n
        self.isLocked = false
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, n), alignment: 16)
        self.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(1, n))
    }

    private init(lockedPointer: UnsafeMutableRawPointer, count: Int) {
        self.pointer = lockedPointer
        self.count = count
        self.isLocked = true
    }

    /// A copy of `bytes` in locked memory (mlock'ed, MADV_DONTDUMP, zeroed in a child of fork()), or nil when the
    /// locked arena cannot hold it (RLIMIT_MEMLOCK, arena full, empty or oversized value): the caller then keeps
    /// nothing beyond the call instead of a copy in ordinary memory.
    public static func locked(copying bytes: some ByteView) -> SecretBytes? {
        let n = bytes.count
        guard n > 0, n <= Int(TG_SECURE_MAX_ALLOCATION), let p = tg_secure_alloc(n) else { return nil }
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { p.copyMemory(from: base, byteCount: n) }
        }
        return SecretBytes(lockedPointer: p, count: n)
    }

    /// Bytes of locked memory in use by every locked `SecretBytes` of the process (tests, diagnostics).
    public static var lockedBytesInUse: Int { Int(tg_secure_in_use()) }
    /// Incremented in every child of fork() (the arena's atfork handler): values cached by a parent are zeros here.
    public static var forkGeneration: UInt64 { tg_secure_fork_generation() }

    /// A copy of `bytes`. The caller remains responsible for wiping its own copy.
    public convenience init(copying bytes: some ByteView) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress, src.count > 0 {
                self.pointer.copyMemory(from: base, byteCount: src.count)
            }
        }
    }

    /// A copy of raw memory (caller memory at the C ABI: a PIN), with no intermediate array. The caller's memory
    /// is left as it is.
    public convenience init(copying buffer: UnsafeRawBufferPointer) {
        self.init(count: buffer.count)
        if let base = buffer.baseAddress, buffer.count > 0 {
            self.pointer.copyMemory(from: base, byteCount: buffer.count)
        }
    }

    /// A copy of `bytes`. The caller remains responsible for wiping its own copy.
    public convenience init(copying bytes: [UInt8]) {
        self.init(count: bytes.count)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress, src.count > 0 {
                self.pointer.copyMemory(from: base, byteCount: src.count)
            }
        }
    }

    /// The first `n` bytes (clamped to 0...count) as a new SecretBytes; this one is unchanged.
    public func prefix(_ n: Int) -> SecretBytes {
        let k = min(max(0, n), count)
        let out = SecretBytes(count: k)
        if k > 0 { out.pointer.copyMemory(from: pointer, byteCount: k) }
        return out
    }

    /// `count` fresh random bytes from the OpenSSL CSPRNG.
    public static func random(count: Int) throws -> SecretBytes {
        let s = SecretBytes(count: count)
        try s.withUnsafeMutableBytes { try SecureRandom.fill($0) }
        return s
    }

    /// Zeroes the contents in place now (OPENSSL_cleanse); `count` stays. For a buffer whose use has ended while a
    /// reference may still exist (an operation's undelivered output): whoever still holds it reads zeros. Like any
    /// mutation, only while no other thread reads it.
    public func wipe() {
        secureZero(pointer, count: count)
    }

    deinit {
        if isLocked {
            tg_secure_free(pointer, count)   // zeroes, then returns the blocks to the arena
            return
        }
        secureZero(pointer, count: max(1, count))
        pointer.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// A new `SecretBytes` holding `range` of this one (clamped to the bounds).
    public func slice(_ range: Range<Int>) -> SecretBytes {
        let lo = min(max(0, range.lowerBound), count)
        let hi = min(max(lo, range.upperBound), count)
        let s = SecretBytes(count: hi - lo)
        if hi > lo { s.pointer.copyMemory(from: pointer + lo, byteCount: hi - lo) }
        return s
    }

    /// Copies the secret out into an ordinary array — only for handing a value to the caller
    /// (e.g. C_GetAttributeValue of an extractable, non-sensitive CKA_VALUE). The array is not wiped.
    public func unsafeCopyToArray() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time in the contents; unequal lengths compare unequal immediately.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        constantTimeEquals(lhs, rhs)
    }

    /// Never prints the contents.
    public var description: String { "SecretBytes(\(count) bytes)" }
}

/// Constant-time comparison of the contents (CRYPTO_memcmp). Lengths are not treated as secret:
/// different lengths return `false` at once.
public func constantTimeEquals(_ a: some ByteView, _ b: some ByteView) -> Bool {
    guard a.count == b.count else { return false }
    if a.count == 0 { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            guard let x = pa.baseAddress, let y = pb.baseAddress else { return false }
            return CRYPTO_memcmp(x, y, pa.count) == 0
        }
    }
}

// MARK: The one zeroisation helper
//
// Every wipe of secret memory in the Swift code goes through `secureZero`, and every one in the C targets
// (CSecureMemory, CPKCS11, CN2HEKernels) calls OPENSSL_cleanse directly: one primitive the optimiser may not drop
// (a plain memset before free is a dead store it may remove). See docs/architecture.md "Secrets in memory".

/// Overwrites `count` bytes at `pointer` with zeros (OPENSSL_cleanse). Nothing happens for a nil pointer or a
/// count ≤ 0.
@inline(__always)
public func secureZero(_ pointer: UnsafeMutableRawPointer?, count: Int) {
    guard let pointer, count > 0 else { return }
    OPENSSL_cleanse(pointer, count)
}

/// Overwrites the memory of `buffer` with zeros (OPENSSL_cleanse).
@inline(__always)
public func secureZero(_ buffer: UnsafeMutableRawBufferPointer) {
    secureZero(buffer.baseAddress, count: buffer.count)
}

/// Appends `more` to `bytes` without leaving an unwiped copy behind: when the storage must grow, the old storage is
/// zeroed before it is released (a plain `append` would free it as it is). Growth doubles, as `append` does.
public func secureAppend(_ bytes: inout [UInt8], contentsOf more: UnsafeRawBufferPointer) {
    let (needed, overflow) = bytes.count.addingReportingOverflow(more.count)
    if !overflow, needed > bytes.capacity {
        let (doubled, o) = bytes.capacity.multipliedReportingOverflow(by: 2)
        var grown = [UInt8]()
        grown.reserveCapacity(o ? needed : max(needed, doubled))
        grown.append(contentsOf: bytes)
        secureZero(&bytes)
        bytes = grown
    }
    bytes.append(contentsOf: more)
}

/// Overwrites an array's storage with zeros (OPENSSL_cleanse) and empties it. With `keepingCapacity` the (zeroed)
/// storage stays allocated for reuse, so later appends up to that capacity leave no unwiped copy behind.
/// The array must be the only reference to its storage (a shared buffer would be copied first, and the
/// copy wiped); every caller wipes its own local or stored array.
public func secureZero(_ bytes: inout [UInt8], keepingCapacity: Bool = false) {
    bytes.withUnsafeMutableBytes { secureZero($0) }
    bytes.removeAll(keepingCapacity: keepingCapacity)
}
