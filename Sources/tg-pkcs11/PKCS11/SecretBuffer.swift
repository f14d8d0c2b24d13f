// Heap memory of a fixed capacity for key bytes and for gathering a PIN line (then copied once into SecretBytes):
// never copied into Swift arrays or Data, never reallocated, zeroised (CryptoCore `secureZero`: OPENSSL_cleanse,
// which the optimiser may not drop) and freed when the last reference goes away.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

final class SecretBuffer {
    private let storage: UnsafeMutableRawBufferPointer
    /// Bytes in use (≤ capacity).
    private(set) var count: Int

    init(capacity: Int) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        count = 0
    }

    /// A copy of `bytes` (the caller zeroises its own copy).
    convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(capacity: bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            storage.baseAddress?.copyMemory(from: base, byteCount: bytes.count)
        }
        count = bytes.count
    }

    deinit {
        wipe(storage)
        storage.deallocate()
    }

    var capacity: Int { storage.count }

    /// Appends one byte; false when full.
    @discardableResult
    func append(_ byte: UInt8) -> Bool {
        guard count < storage.count else { return false }
        storage[count] = byte
        count += 1
        return true
    }

    /// Marks `n` more bytes (written through `withUnsafeMutableSpareBytes`) as used.
    func extend(by n: Int) {
        count = min(storage.count, count + max(0, n))
    }

    /// Drops trailing bytes while `predicate` holds (e.g. a newline after a PIN), zeroising them.
    func trimTrailing(where predicate: (UInt8) -> Bool) {
        while count > 0, predicate(storage[count - 1]) {
            count -= 1
            secureZero(UnsafeMutableRawBufferPointer(rebasing: storage[count..<(count + 1)]))
        }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// The unused tail, for reading into.
    func withUnsafeMutableSpareBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(rebasing: storage[count..<storage.count]))
    }
}

/// Overwrites memory with zeros in a way the compiler may not elide (the project's one helper, `secureZero`).
func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
    secureZero(buffer)
}

/// Zeroises a byte array in place (used for transient copies such as decrypted plaintext buffers).
func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { secureZero($0) }
}
