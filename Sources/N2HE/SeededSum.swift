/// The seeded sum layout `LWS1` (docs/n2he.md): the homomorphic sum of LWE2 ciphertexts kept decryptable under a
/// `seeded-once` key. A is never sent: it is the sum mod q of the seeds' PCG64 expansions, so the caller cannot
/// choose it, and the seeds tell the token which ciphertexts the sum spends.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `LWS1` |
/// | 4 | 4 | k, uint32 LE |
/// | 8 | 4 | n, uint32 LE |
/// | 12 | 1 | flags: 0x03 batch, 0x02 scalar (k = 1) |
/// | 13 | 4 | m, number of seeds, uint32 LE (1 ≤ m ≤ `maximumSeeds`) |
/// | 17 | 32·m | the seeds, in the order they were added |
/// | 17 + 32·m | 8·k | B, int64 LE: the sum of the inputs' B mod q |
public struct N2HESeededSum: Sendable, Equatable {
    public static let magic: [UInt8] = Array("LWS1".utf8)
    public static let headerSize = 17
    /// The most seeds one sum may carry, whatever the parameters (2 MiB of seeds; decryption expands each).
    public static let maximumSeeds = 65536

    /// k.
    public let count: Int
    /// n from the header.
    public let dimension: Int
    public let isBatch: Bool
    /// The 32-byte seeds, in order.
    public let seeds: [[UInt8]]

    public var plaintextByteCount: Int { count * 8 }
    var bOffset: Int { Self.headerSize + N2HECiphertextFormat.seedSize * seeds.count }

    /// Total bytes of a sum of `count` samples over `seedCount` seeds, or nil when not representable.
    public static func byteCount(count k: Int, seedCount m: Int) -> Int? {
        guard k >= 1, k <= Int(UInt32.max), m >= 1, m <= maximumSeeds else { return nil }
        return headerSize + N2HECiphertextFormat.seedSize * m + 8 * k
    }

    /// Does `bytes` start with the `LWS1` magic?
    public static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && Array(bytes.prefix(4)) == magic
    }

    /// Parses and validates a seeded sum: magic, flags, k ≥ 1 (scalar ⇒ k = 1), n = `expectedDimension` (if
    /// given), 1 ≤ m ≤ `maximumSeeds`, exact length. Never reads past `bytes`; never traps.
    public init(parsing bytes: UnsafeRawBufferPointer, expectedDimension: Int? = nil) throws {
        guard bytes.count >= Self.headerSize else {
            throw N2HEError.malformedCiphertext(Self.hasMagic(bytes) || bytes.count < 4 ? .truncatedHeader : .badMagic)
        }
        guard Self.hasMagic(bytes) else { throw N2HEError.malformedCiphertext(.badMagic) }
        let k = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let n = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let flags = bytes[12]
        let m = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 13, as: UInt32.self)))
        guard flags & 0x02 != 0 else { throw N2HEError.malformedCiphertext(.seededFlagMismatch) }
        guard flags & ~0x03 == 0 else { throw N2HEError.malformedCiphertext(.unknownFlags) }
        let batch = flags & 0x01 != 0
        guard k >= 1 else { throw N2HEError.malformedCiphertext(.zeroCount) }
        guard batch || k == 1 else { throw N2HEError.malformedCiphertext(.scalarWithCountNotOne) }
        if let expected = expectedDimension, expected != n {
            throw N2HEError.dimensionMismatch(expected: expected, actual: n)
        }
        guard n >= 1 else { throw N2HEError.malformedCiphertext(.zeroDimension) }
        guard m >= 1, m <= Self.maximumSeeds else { throw N2HEError.malformedCiphertext(.seedCountOutOfRange) }
        guard let total = Self.byteCount(count: k, seedCount: m) else { throw N2HEError.malformedCiphertext(.sizeOverflow) }
        guard bytes.count == total else { throw N2HEError.lengthMismatch(expected: total, actual: bytes.count) }
        let size = N2HECiphertextFormat.seedSize
        seeds = (0..<m).map { j in Array(UnsafeRawBufferPointer(rebasing: bytes[(Self.headerSize + size * j)..<(Self.headerSize + size * (j + 1))])) }
        count = k
        dimension = n
        isBatch = batch
    }

    public init(parsing bytes: [UInt8], expectedDimension: Int? = nil) throws {
        self = try bytes.withUnsafeBytes { try N2HESeededSum(parsing: $0, expectedDimension: expectedDimension) }
    }

    /// Writes a seeded sum with the given seeds and B values (each reduced mod q by the caller).
    static func write(seeds: [[UInt8]], b: [UInt64], dimension n: Int, batch: Bool) throws -> [UInt8] {
        guard let total = byteCount(count: b.count, seedCount: seeds.count), n >= 1, n <= Int(UInt32.max),
              seeds.allSatisfy({ $0.count == N2HECiphertextFormat.seedSize }) else {
            throw N2HEError.malformedCiphertext(.seedCountOutOfRange)
        }
        var out = [UInt8]()
        out.reserveCapacity(total)
        out += magic
        withUnsafeBytes(of: UInt32(b.count).littleEndian) { out += $0 }
        withUnsafeBytes(of: UInt32(n).littleEndian) { out += $0 }
        out.append(batch ? 0x03 : 0x02)
        withUnsafeBytes(of: UInt32(seeds.count).littleEndian) { out += $0 }
        for s in seeds { out += s }
        for v in b { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        return out
    }
}

/// The layout of a ciphertext, from its magic.
public enum N2HECiphertextLayout: Sendable, Equatable {
    case lwe1, lwe2, seededSum

    /// nil: no known magic (or fewer than 4 bytes).
    public init?(magicOf bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 4 else { return nil }
        let m = Array(bytes.prefix(4))
        if m == N2HECiphertextFormat.lwe1.magic { self = .lwe1 }
        else if m == N2HECiphertextFormat.lwe2.magic { self = .lwe2 }
        else if m == N2HESeededSum.magic { self = .seededSum }
        else { return nil }
    }
}

extension N2HEParameters {
    /// The most ciphertexts a seeded sum may hold and still decrypt exactly under smudging: the summed Skellam
    /// noise (variance 2μ per term) must stay below Δ/4 at eight standard deviations, 64 · 2μ · m ≤ (Δ/4)²,
    /// capped at `N2HESeededSum.maximumSeeds`. 0 when even one ciphertext's noise may reach Δ/4 (Δ < 4 or a very
    /// large μ): such a key decrypts single LWE2 ciphertexts only. docs/n2he.md has the table.
    public var maximumSeededSumTerms: Int {
        guard scaleBits >= 2 else { return 0 }
        let quarter = Double(UInt64(1) << UInt64(scaleBits - 2))
        let terms = (quarter * quarter) / (64 * 2 * noiseMu)
        return terms >= Double(N2HESeededSum.maximumSeeds) ? N2HESeededSum.maximumSeeds : Int(terms)
    }
}
