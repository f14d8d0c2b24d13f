import COpenSSL
import CryptoCore
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Encryption and decryption under one N2HE secret key with fixed parameters (N2HE-SPEC.md §1–§3).
///
/// Byte-compatible with the TensorGuard SDKs: LWE1 (full A) and LWE2 (PCG64-seeded A). Randomness: noise from
/// OpenSSL RAND_bytes, LWE1's A from AES-256-CTR under a fresh random key per call (per thread), LWE2's seed from
/// RAND_bytes. All entry points validate their input completely and report `N2HEError`, never trap.
///
/// `threads` (1...`maximumThreads`, default 1) splits the k rows over that many threads; results are identical
/// for any thread count (LWE2 threads jump the PCG64 stream ahead to their first row).
public struct N2HECipher: Sendable {
    public let parameters: N2HEParameters
    public let key: N2HESecretKey
    let noise: SkellamNoise

    public static let maximumThreads = 64

    /// - Throws: `N2HEError.dimensionMismatch` if the key's n differs from `parameters.n`.
    public init(key: N2HESecretKey, parameters: N2HEParameters) throws {
        guard key.n == parameters.n else { throw N2HEError.dimensionMismatch(expected: parameters.n, actual: key.n) }
        self.key = key
        self.parameters = parameters
        self.noise = SkellamNoise(mu: parameters.noiseMu, scale: parameters.scale)
    }

    // MARK: - Sizes

    /// Byte length of the ciphertext of `count` values (k) in `format` under these parameters.
    public func ciphertextByteCount(format: N2HECiphertextFormat, count: Int) throws -> Int {
        guard count >= 1, count <= Int(UInt32.max) else { throw N2HEError.invalidPlaintextLength(count &* 8) }
        guard let total = format.byteCount(count: count, dimension: parameters.n) else {
            throw N2HEError.invalidPlaintextLength(count &* 8)
        }
        return total
    }

    /// Byte length of the ciphertext for a plaintext of `plaintextByteCount` bytes (8·k, little-endian int64).
    public func ciphertextByteCount(format: N2HECiphertextFormat, plaintextByteCount: Int) throws -> Int {
        try ciphertextByteCount(format: format, count: try Self.messageCount(plaintextByteCount: plaintextByteCount))
    }

    /// Byte length (8·k) of the plaintext `ciphertext` decrypts to, after validating its header and length
    /// against this key (the same checks `decrypt` makes before any arithmetic).
    public func plaintextByteCount(ciphertext: UnsafeRawBufferPointer) throws -> Int {
        if N2HESeededSum.hasMagic(ciphertext) {
            return try N2HESeededSum(parsing: ciphertext, expectedDimension: parameters.n).plaintextByteCount
        }
        return try N2HECiphertextInfo(parsing: ciphertext, expectedDimension: parameters.n).plaintextByteCount
    }

    public func plaintextByteCount(ciphertext: [UInt8]) throws -> Int {
        try ciphertext.withUnsafeBytes { try plaintextByteCount(ciphertext: $0) }
    }

    static func messageCount(plaintextByteCount bytes: Int) throws -> Int {
        guard bytes >= 8, bytes % 8 == 0, bytes / 8 <= Int(UInt32.max) else { throw N2HEError.invalidPlaintextLength(bytes) }
        return bytes / 8
    }

    static func checkThreads(_ threads: Int) throws {
        guard threads >= 1, threads <= maximumThreads else {
            throw N2HEError.unsupportedParameters(.threadCountOutOfRange(threads))
        }
    }

    // MARK: - Encrypt

    /// Encrypts k = plaintext.count / 8 little-endian int64 values (each reduced mod t, Python semantics) into a
    /// batch ciphertext written at the start of `output`. Returns the number of bytes written.
    /// `output` may overlap `plaintext` (the plaintext is then copied first).
    public func encrypt(plaintext: UnsafeRawBufferPointer, format: N2HECiphertextFormat,
                        into output: UnsafeMutableRawBufferPointer, threads: Int = 1) throws -> Int {
        if Self.overlap(UnsafeRawBufferPointer(output), plaintext) {
            let copy = Array(plaintext)
            return try copy.withUnsafeBytes { try encrypt(plaintext: $0, format: format, into: output, threads: threads, fixed: nil) }
        }
        return try encrypt(plaintext: plaintext, format: format, into: output, threads: threads, fixed: nil)
    }

    static func overlap(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard let a0 = a.baseAddress, let b0 = b.baseAddress, a.count > 0, b.count > 0 else { return false }
        return a0 < b0 + b.count && b0 < a0 + a.count
    }

    /// Encrypts a plaintext given as 8·k bytes of little-endian int64.
    public func encrypt(plaintext: [UInt8], format: N2HECiphertextFormat, threads: Int = 1) throws -> [UInt8] {
        try plaintext.withUnsafeBytes { try encryptToArray(plaintext: $0, format: format, threads: threads, fixed: nil) }
    }

    /// Encrypts `messages` (each reduced mod t, Python semantics: −1 ↦ t − 1).
    public func encrypt(_ messages: [Int64], format: N2HECiphertextFormat, threads: Int = 1) throws -> [UInt8] {
        let le = messages.map { $0.littleEndian }
        return try le.withUnsafeBytes { try encryptToArray(plaintext: $0, format: format, threads: threads, fixed: nil) }
    }

    /// Fixed randomness for known-answer tests: noise per sample, and A (LWE1, k×n row-major) or the seed (LWE2).
    struct FixedRandomness {
        var noise: [Int64]
        var matrix: [UInt64]? = nil
        var seed: [UInt8]? = nil
    }

    func encryptToArray(plaintext: UnsafeRawBufferPointer, format: N2HECiphertextFormat, threads: Int,
                        fixed: FixedRandomness?) throws -> [UInt8] {
        let total = try ciphertextByteCount(format: format, plaintextByteCount: plaintext.count)
        return try [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let written = try encrypt(plaintext: plaintext, format: format, into: UnsafeMutableRawBufferPointer(buffer),
                                      threads: threads, fixed: fixed)
            initialized = written
        }
    }

    func encrypt(plaintext: UnsafeRawBufferPointer, format: N2HECiphertextFormat,
                 into output: UnsafeMutableRawBufferPointer, threads: Int, fixed: FixedRandomness?) throws -> Int {
        try Self.checkThreads(threads)
        let k = try Self.messageCount(plaintextByteCount: plaintext.count)
        let total = try ciphertextByteCount(format: format, count: k)
        guard output.count >= total, let out = output.baseAddress, let input = plaintext.baseAddress else {
            throw N2HEError.outputBufferTooSmall(required: total, available: output.count)
        }
        let n = parameters.n
        var noiseValues: [Int64]
        if let fixed {
            guard fixed.noise.count == k else { throw N2HEError.invalidPlaintextLength(plaintext.count) }
            noiseValues = fixed.noise
        } else {
            noiseValues = try noise.samples(k)
        }
        defer { noiseValues.withUnsafeMutableBytes { secureZero($0) } }
        // Header.
        out.copyMemory(from: format.magic, byteCount: 4)
        out.storeBytes(of: UInt32(k).littleEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: UInt32(n).littleEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: format == .lwe1 ? 0x01 : 0x03, toByteOffset: 12, as: UInt8.self)

        let rowsBox = Pointers(input: UnsafeRawPointer(input), output: out)
        let mask = parameters.modulusMask
        let tMask = parameters.plaintextMask
        let scaleBits = UInt64(parameters.scaleBits)
        let key = self.key
        // B_r = (dot + e_r + Δ·(m_r mod t)) mod q.
        @inline(__always) func bValue(_ dot: UInt64, _ row: Int, _ e: UnsafePointer<Int64>) -> UInt64 {
            let m = UInt64(littleEndian: rowsBox.input.loadUnaligned(fromByteOffset: row &* 8, as: UInt64.self)) & tMask
            return (dot &+ UInt64(bitPattern: e[row]) &+ (m &<< scaleBits)) & mask
        }

        switch format {
        case .lwe1:
            let bOffset = N2HECiphertextFormat.fixedHeaderSize + k * n * 8
            let threadCount = max(1, min(threads, k))
            if let matrix = fixed?.matrix {
                guard matrix.count == k * n else { throw N2HEError.invalidPlaintextLength(plaintext.count) }
                matrix.withUnsafeBufferPointer { a in
                    noiseValues.withUnsafeBufferPointer { e in
                        guard let aBase = a.baseAddress, let eBase = e.baseAddress else { return }
                        let scratch = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
                        defer { scratch.deallocate() }
                        for r in 0..<k {
                            for i in 0..<n { scratch[i] = aBase[r * n + i] & mask }
                            let dot = Kernels.storeAndDot(scratch, rowsBox.output + 13 + r * n * 8, key.plus64, key.minus64, n)
                            rowsBox.output.storeBytes(of: bValue(dot, r, eBase).littleEndian, toByteOffset: bOffset + 8 * r, as: UInt64.self)
                        }
                    }
                }
                return total
            }
            let keystreams = try (0..<threadCount).map { _ in try AESCTRKeystream() }
            let is32 = parameters.modulusBits == 32
            let streamBytes = is32 ? 4 * n : 6 * n
            let ok = noiseValues.withUnsafeBufferPointer { e -> Bool in
                guard let eBase = e.baseAddress else { return false }
                let eBox = ConstPointer(pointer: eBase)
                return Parallel.rows(k, threads: threadCount) { thread, rows in
                    let keystream = keystreams[thread]
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: streamBytes + 8, alignment: 64)
                    scratch.initializeMemory(as: UInt8.self, repeating: 0, count: streamBytes + 8)
                    defer { scratch.deallocate() }
                    for r in rows {
                        guard keystream.fill(scratch, count: streamBytes) else { return false }
                        let rowOut = rowsBox.output + 13 + r * n * 8
                        let dot = is32
                            ? (SIMDSupport.avx512
                                ? n2he_store_dot_u32_avx512(scratch, rowOut, key.plusBits, key.minusBits, n)
                                : Kernels.storeAndDotFrom32(scratch, rowOut, key.plus64, key.minus64, n))
                            : (SIMDSupport.avx512
                                ? n2he_store_dot_u48_avx512(scratch, rowOut, key.plusBits, key.minusBits, n)
                                : Kernels.storeAndDotFrom48(scratch, rowOut, key.plus64, key.minus64, n))
                        rowsBox.output.storeBytes(of: bValue(dot, r, eBox.pointer).littleEndian,
                                                  toByteOffset: bOffset + 8 * r, as: UInt64.self)
                    }
                    return true
                }
            }
            guard ok else { throw N2HEError.cryptoBackendFailure }
            return total

        case .lwe2:
            let seed = try fixed?.seed ?? SecureRandom.bytes(N2HECiphertextFormat.seedSize)
            guard seed.count == N2HECiphertextFormat.seedSize else { throw N2HEError.invalidPlaintextLength(plaintext.count) }
            (out + 13).copyMemory(from: seed, byteCount: seed.count)
            let generator = PCG64(seedBytesBigEndian: seed)
            let bOffset = N2HECiphertextFormat.fixedHeaderSize + N2HECiphertextFormat.seedSize
            let modulusBits = parameters.modulusBits
            _ = noiseValues.withUnsafeBufferPointer { e -> Bool in
                guard let eBase = e.baseAddress else { return false }
                let eBox = ConstPointer(pointer: eBase)
                return Parallel.rows(k, threads: max(1, min(threads, k))) { _, rows in
                    var stream = LWE2RowStream(generator: generator, rows: rows, n: n, modulusBits: modulusBits)
                    defer { stream.release() }
                    for r in rows {
                        let dot = stream.nextRowDot(key)
                        rowsBox.output.storeBytes(of: bValue(dot, r, eBox.pointer).littleEndian,
                                                  toByteOffset: bOffset + 8 * r, as: UInt64.self)
                    }
                    return true
                }
            }
            return total
        }
    }

    // MARK: - Decrypt

    /// Decrypts an LWE1, LWE2 or seeded-sum (LWS1) ciphertext (batch or scalar form) into k little-endian int64
    /// values in [0, t) written at the start of `output`. Returns the number of bytes written (8·k).
    /// `output` may overlap `ciphertext` (the ciphertext is then copied first).
    ///
    /// `smudging`: before rounding, each row's x = B − A·s gets fresh noise uniform in [−Δ/4, Δ/4) from the
    /// CSPRNG, so that the answer for a row whose B was shifted near a rounding boundary says almost nothing about
    /// that row's noise (docs/n2he.md, "Smudging"). Exact while the ciphertext's own noise is below Δ/4.
    public func decrypt(ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                        threads: Int = 1, smudging: Bool = false) throws -> Int {
        if Self.overlap(UnsafeRawBufferPointer(output), ciphertext) {
            let copy = Array(ciphertext)
            return try copy.withUnsafeBytes { try decrypt(ciphertext: $0, into: output, threads: threads, smudging: smudging) }
        }
        try Self.checkThreads(threads)
        if N2HESeededSum.hasMagic(ciphertext) {
            return try decryptSeededSum(ciphertext, into: output, threads: threads, smudging: smudging)
        }
        let info = try N2HECiphertextInfo(parsing: ciphertext, expectedDimension: parameters.n)
        let k = info.count, n = parameters.n
        let required = info.plaintextByteCount
        guard output.count >= required, let out = output.baseAddress, let input = ciphertext.baseAddress else {
            throw N2HEError.outputBufferTooSmall(required: required, available: output.count)
        }
        // The smudging noise is drawn into the output first: each row reads its own slot before writing m there.
        if smudging { try SecureRandom.fill(UnsafeMutableRawBufferPointer(start: out, count: required)) }
        let box = Pointers(input: UnsafeRawPointer(input), output: out)
        let mask = parameters.modulusMask
        let tMask = parameters.plaintextMask
        let scaleBits = UInt64(parameters.scaleBits)
        let smudge = Smudge(parameters: parameters, enabled: smudging)
        let bOffset = info.bOffset
        let key = self.key
        @inline(__always) func emit(_ dot: UInt64, _ row: Int) {
            let b = UInt64(littleEndian: box.input.loadUnaligned(fromByteOffset: bOffset &+ row &* 8, as: UInt64.self))
            let u = smudge.noise(box.output.loadUnaligned(fromByteOffset: row &* 8, as: UInt64.self))
            let m = Kernels.decode((b &- dot &+ u) & mask, scaleBits: scaleBits, plaintextMask: tMask)
            box.output.storeBytes(of: m.littleEndian, toByteOffset: row &* 8, as: UInt64.self)
        }
        let threadCount = max(1, min(threads, k))
        switch info.format {
        case .lwe1:
            _ = Parallel.rows(k, threads: threadCount) { _, rows in
                for r in rows {
                    emit(Kernels.dotRow(box.input + 13 + r * n * 8, key), r)
                }
                return true
            }
        case .lwe2:
            let seed = Array(UnsafeRawBufferPointer(rebasing: ciphertext[13..<45]))
            let generator = PCG64(seedBytesBigEndian: seed)
            let modulusBits = parameters.modulusBits
            _ = Parallel.rows(k, threads: threadCount) { _, rows in
                var stream = LWE2RowStream(generator: generator, rows: rows, n: n, modulusBits: modulusBits)
                defer { stream.release() }
                for r in rows { emit(stream.nextRowDot(key), r) }
                return true
            }
        }
        return required
    }

    /// A seeded sum: A·s = Σ_j expand(seed_j)·s, accumulated seed by seed (one row stream alive at a time).
    private func decryptSeededSum(_ ciphertext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
                                  threads: Int, smudging: Bool) throws -> Int {
        let sum = try N2HESeededSum(parsing: ciphertext, expectedDimension: parameters.n)
        let k = sum.count, n = parameters.n
        let required = sum.plaintextByteCount
        guard output.count >= required, let out = output.baseAddress, let input = ciphertext.baseAddress else {
            throw N2HEError.outputBufferTooSmall(required: required, available: output.count)
        }
        let dots = UnsafeMutablePointer<UInt64>.allocate(capacity: k)
        dots.initialize(repeating: 0, count: k)
        defer {
            secureZero(dots, count: k * MemoryLayout<UInt64>.stride)   // A·s: with B, the plaintext
            dots.deallocate()
        }
        let dotsBox = MutablePointer(pointer: dots)
        let key = self.key
        let modulusBits = parameters.modulusBits
        let threadCount = k.multipliedReportingOverflow(by: n).partialValue >= 1 << 20 ? max(1, min(threads, k)) : 1
        for seed in sum.seeds {
            let generator = PCG64(seedBytesBigEndian: seed)
            _ = Parallel.rows(k, threads: threadCount) { _, rows in
                var stream = LWE2RowStream(generator: generator, rows: rows, n: n, modulusBits: modulusBits)
                defer { stream.release() }
                for r in rows { dotsBox.pointer[r] = dotsBox.pointer[r] &+ stream.nextRowDot(key) }
                return true
            }
        }
        if smudging { try SecureRandom.fill(UnsafeMutableRawBufferPointer(start: out, count: required)) }
        let smudge = Smudge(parameters: parameters, enabled: smudging)
        let mask = parameters.modulusMask, tMask = parameters.plaintextMask, scaleBits = UInt64(parameters.scaleBits)
        let bOffset = sum.bOffset
        for r in 0..<k {
            let b = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: bOffset + r * 8, as: UInt64.self))
            let u = smudge.noise(out.loadUnaligned(fromByteOffset: r * 8, as: UInt64.self))
            let m = Kernels.decode((b &- dots[r] &+ u) & mask, scaleBits: scaleBits, plaintextMask: tMask)
            out.storeBytes(of: m.littleEndian, toByteOffset: r * 8, as: UInt64.self)
        }
        return required
    }

    /// Decrypts a ciphertext to its k values in [0, t).
    public func decrypt(_ ciphertext: [UInt8], threads: Int = 1, smudging: Bool = false) throws -> [Int64] {
        try Self.checkThreads(threads)
        return try ciphertext.withUnsafeBytes { ct in
            let k = try plaintextByteCount(ciphertext: ct) / 8
            var out = [Int64](repeating: 0, count: k)
            defer { out.withUnsafeMutableBytes { secureZero($0) } }
            _ = try out.withUnsafeMutableBytes { try decrypt(ciphertext: ct, into: $0, threads: threads, smudging: smudging) }
            return out.map { Int64(littleEndian: $0) }
        }
    }
}
