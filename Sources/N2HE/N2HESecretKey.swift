import COpenSSL
import CryptoCore

/// An N2HE secret key s ∈ {−1, 0, 1}^n.
///
/// The key lives in one private allocation (the entries plus the sign masks the kernels use instead of
/// multiplying) that is zeroised with `OPENSSL_cleanse` when the key is released. The object is immutable.
public final class N2HESecretKey: @unchecked Sendable {
    /// Dimension n (number of entries).
    public let n: Int

    // Layout of `storage`: plus64[n] | minus64[n] | plus32[n] | minus32[n] | entries (Int8)[n] |
    // plusBits[⌈n/8⌉ + 8] | minusBits[⌈n/8⌉ + 8] (bit i set where s_i = +1, resp. −1; for the AVX-512 kernels).
    private let storage: UnsafeMutableRawPointer
    private let storageSize: Int
    @usableFromInline let plus64: UnsafePointer<UInt64>
    @usableFromInline let minus64: UnsafePointer<UInt64>
    @usableFromInline let plus32: UnsafePointer<UInt32>
    @usableFromInline let minus32: UnsafePointer<UInt32>
    private let entries: UnsafeMutablePointer<Int8>
    @usableFromInline let plusBits: UnsafePointer<UInt8>
    @usableFromInline let minusBits: UnsafePointer<UInt8>

    /// Builds the key from `n` entries produced by `entry(i)` ∈ {−1, 0, 1} (checked by the callers).
    private init(n: Int, entry: (Int) -> Int8) {
        self.n = n
        let bitBytes = (n + 7) / 8 + 8   // 8 bytes of zero padding: the kernels read 4 bytes at any bit offset
        storageSize = n * 25 + 2 * bitBytes
        storage = .allocate(byteCount: storageSize, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: storageSize)
        let p64 = storage.bindMemory(to: UInt64.self, capacity: 2 * n)
        let p32 = (storage + 16 * n).bindMemory(to: UInt32.self, capacity: 2 * n)
        entries = (storage + 24 * n).bindMemory(to: Int8.self, capacity: n)
        let bits = (storage + 25 * n).bindMemory(to: UInt8.self, capacity: 2 * bitBytes)
        for i in 0..<n {
            let e = entry(i)
            entries[i] = e
            bits[i / 8] |= (e == 1 ? 1 : 0) << UInt8(i % 8)
            bits[bitBytes + i / 8] |= (e == -1 ? 1 : 0) << UInt8(i % 8)
            let plus: UInt64 = e == 1 ? ~0 : 0
            let minus: UInt64 = e == -1 ? ~0 : 0
            p64[i] = plus
            p64[n + i] = minus
            p32[i] = UInt32(truncatingIfNeeded: plus)
            p32[n + i] = UInt32(truncatingIfNeeded: minus)
        }
        plus64 = UnsafePointer(p64)
        minus64 = UnsafePointer(p64 + n)
        plus32 = UnsafePointer(p32)
        minus32 = UnsafePointer(p32 + n)
        plusBits = UnsafePointer(bits)
        minusBits = UnsafePointer(bits + bitBytes)
    }

    deinit {
        secureZero(storage, count: storageSize)
        storage.deallocate()
    }

    /// A fresh uniform ternary key from OpenSSL's CSPRNG (rejection sampling on bytes < 255: no modulo bias).
    public static func generate(n: Int) throws -> N2HESecretKey {
        guard N2HEParameters.dimensionRange.contains(n) else {
            throw N2HEError.unsupportedParameters(.dimensionOutOfRange(n))
        }
        var buffer = [UInt8](repeating: 0, count: n + n / 8 + 64)
        defer { buffer.withUnsafeMutableBytes { secureZero($0) } }
        var values = [Int8](repeating: 0, count: n)
        defer { values.withUnsafeMutableBytes { secureZero($0) } }
        var filled = 0
        while filled < n {
            try buffer.withUnsafeMutableBytes { try SecureRandom.fill($0) }
            for b in buffer where b < 255 && filled < n {
                values[filled] = Int8(b % 3) - 1
                filled += 1
            }
        }
        return values.withUnsafeBufferPointer { v in N2HESecretKey(n: n, entry: { v[$0] }) }
    }

    /// Checks the raw form and returns n. Entries are validated as full int64 values; once valid, the low
    /// byte of each entry (offset 8·i) is its value as Int8.
    private static func validateRaw(_ raw: UnsafeRawBufferPointer, expectedDimension: Int?) throws -> Int {
        if let expected = expectedDimension {
            guard N2HEParameters.dimensionRange.contains(expected) else {
                throw N2HEError.unsupportedParameters(.dimensionOutOfRange(expected))
            }
            guard raw.count == expected * 8 else { throw N2HEError.invalidKeyLength(expected: expected * 8, actual: raw.count) }
        }
        guard raw.count % 8 == 0, N2HEParameters.dimensionRange.contains(raw.count / 8) else {
            throw N2HEError.invalidKeyLength(expected: nil, actual: raw.count)
        }
        let n = raw.count / 8
        for i in 0..<n {
            let v = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
            guard v >= -1, v <= 1 else { throw N2HEError.invalidKeyEntry(index: i) }
        }
        return n
    }

    /// Parses an `.npy` key file and validates its data; returns n and the data offset.
    private static func validateNPY(_ file: UnsafeRawBufferPointer, expectedDimension: Int?) throws -> (n: Int, offset: Int) {
        let (count, offset) = try NPYFormat.parseHeader(file)
        if let expected = expectedDimension, expected != count {
            throw N2HEError.dimensionMismatch(expected: expected, actual: count)
        }
        let n = try validateRaw(UnsafeRawBufferPointer(rebasing: file[offset...]), expectedDimension: count)
        return (n, offset)
    }

    /// Imports the raw form: exactly 8·n bytes, n little-endian int64 in {−1, 0, 1}.
    /// - Parameter expectedDimension: if given, the byte count must be 8 × this value.
    public convenience init(rawRepresentation raw: UnsafeRawBufferPointer, expectedDimension: Int? = nil) throws {
        let n = try Self.validateRaw(raw, expectedDimension: expectedDimension)
        self.init(n: n) { Int8(bitPattern: raw[$0 * 8]) }
    }

    /// Imports the raw form from a byte array (see `init(rawRepresentation:expectedDimension:)`).
    public convenience init(rawRepresentation raw: [UInt8], expectedDimension: Int? = nil) throws {
        let n = try raw.withUnsafeBytes { try Self.validateRaw($0, expectedDimension: expectedDimension) }
        self.init(n: n) { Int8(bitPattern: raw[$0 * 8]) }
    }

    /// Parses a TensorGuard `.npy` key file (versions 1.0 and 2.0, dtype '<i8', C order, shape (n,)).
    public convenience init(npyFile file: UnsafeRawBufferPointer, expectedDimension: Int? = nil) throws {
        let (n, offset) = try Self.validateNPY(file, expectedDimension: expectedDimension)
        self.init(n: n) { Int8(bitPattern: file[offset + $0 * 8]) }
    }

    /// Parses a TensorGuard `.npy` key file from a byte array.
    public convenience init(npyFile file: [UInt8], expectedDimension: Int? = nil) throws {
        let (n, offset) = try file.withUnsafeBytes { try Self.validateNPY($0, expectedDimension: expectedDimension) }
        self.init(n: n) { Int8(bitPattern: file[offset + $0 * 8]) }
    }

    /// Gives `body` the raw form (8·n bytes) in a temporary buffer that is zeroised afterwards.
    public func withRawRepresentation<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let byteCount = n * 8
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        defer {
            secureZero(buffer, count: byteCount)
            buffer.deallocate()
        }
        for i in 0..<n {
            buffer.storeBytes(of: Int64(entries[i]).littleEndian, toByteOffset: i * 8, as: Int64.self)
        }
        return try body(UnsafeRawBufferPointer(start: buffer, count: byteCount))
    }

    /// The raw form: 8·n bytes, n little-endian int64 (the caller owns and must zeroise the copy).
    public func rawRepresentation() -> [UInt8] {
        withRawRepresentation { Array($0) }
    }

    /// The key as TensorGuard's `save_key` writes it (numpy `.npy` version 1.0).
    public func npyRepresentation() -> [UInt8] {
        var out = NPYFormat.header(count: n)
        withRawRepresentation { out.append(contentsOf: $0) }
        return out
    }

    /// Constant-time comparison of two keys.
    public func isEqual(to other: N2HESecretKey) -> Bool {
        guard n == other.n else { return false }
        return CRYPTO_memcmp(entries, other.entries, n) == 0
    }
}
