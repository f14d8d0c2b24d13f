// Plaintext vectors (raw little-endian int64 files or a JSON array) and the ciphertext header checks
// done before C_Decrypt (N2HE-SPEC §2), so that a wrong file gets a message naming what is wrong.
import Foundation
import N2HE

enum Plaintext {
    /// `--values '[1, 2, 3]'`: a non-empty JSON array of integers that fit in int64. Parsed by hand:
    /// JSONSerialization turns large integers into doubles or decimals, which would silently round.
    static func parseValues(_ text: String) throws -> [Int64] {
        let chars = Array(text.utf8)
        var i = 0
        func skipSpace() { while i < chars.count, [0x20, 0x09, 0x0A, 0x0D].contains(chars[i]) { i += 1 } }
        let shape = CLIError("--values must be a JSON array of integers like '[1, 2, 3]'")
        skipSpace()
        guard i < chars.count, chars[i] == UInt8(ascii: "[") else { throw shape }
        i += 1
        var values: [Int64] = []
        skipSpace()
        if i < chars.count, chars[i] == UInt8(ascii: "]") {
            throw CLIError("--values is empty; give at least one integer")
        }
        while true {
            skipSpace()
            let start = i
            while i < chars.count, ![UInt8(ascii: ","), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(chars[i]) { i += 1 }
            let token = String(decoding: chars[start..<i], as: UTF8.self)
            let isInteger = !token.isEmpty && token.utf8.enumerated().allSatisfy { index, c in
                (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (index == 0 && c == UInt8(ascii: "-") && token.utf8.count > 1)
            }
            guard isInteger else {
                throw CLIError("--values: element \(values.count) (\(token.isEmpty ? "missing" : "'\(token.prefix(24))'")) is not an integer")
            }
            guard let value = Int64(token) else {
                throw CLIError("--values: element \(values.count) does not fit in a signed 64-bit integer")
            }
            values.append(value)
            skipSpace()
            guard i < chars.count else { throw shape }
            if chars[i] == UInt8(ascii: ",") { i += 1; continue }
            if chars[i] == UInt8(ascii: "]") { i += 1; break }
            throw shape
        }
        skipSpace()
        guard i == chars.count else { throw shape }
        return values
    }

    /// Raw little-endian int64, non-empty, a multiple of 8 bytes.
    static func decode(_ bytes: [UInt8], path: String) throws -> [Int64] {
        guard !bytes.isEmpty else { throw CLIError("plaintext file '\(path)' is empty") }
        guard bytes.count % 8 == 0 else {
            throw CLIError("plaintext file '\(path)' has \(bytes.count) bytes, not a multiple of 8 (raw little-endian int64 expected)")
        }
        return bytes.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
        }
    }

    static func encode(_ values: [Int64]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func json(_ values: [Int64]) -> String {
        "[" + values.map(String.init).joined(separator: ", ") + "]"
    }
}

/// The ciphertext checks done before C_Decrypt, with the N2HE library's parser.
enum Ciphertext {
    /// Parses an SDK ciphertext file's header and checks it against the file length and the key's n.
    /// What a ciphertext file holds, after validating it: LWE1, LWE2 or a seeded sum (LWS1).
    struct Summary {
        let layout: N2HECiphertextLayout
        /// k.
        let count: Int
        /// n from the header.
        let dimension: Int
        var plaintextByteCount: Int { count * 8 }
    }

    static func inspect(_ bytes: [UInt8], path: String, keyDimension: Int?) throws -> Summary {
        do {
            if bytes.withUnsafeBytes(N2HESeededSum.hasMagic) {
                let sum = try N2HESeededSum(parsing: bytes, expectedDimension: keyDimension)
                return Summary(layout: .seededSum, count: sum.count, dimension: sum.dimension)
            }
            let info = try N2HECiphertextInfo(parsing: bytes, expectedDimension: keyDimension)
            return Summary(layout: info.format == .lwe1 ? .lwe1 : .lwe2, count: info.count, dimension: info.dimension)
        } catch let error as N2HEError {
            throw CLIError("ciphertext file '\(path)': " + describe(error))
        }
    }

    static func describe(_ error: N2HEError) -> String {
        switch error {
        case .malformedCiphertext(let defect):
            switch defect {
            case .truncatedHeader: return "too short for an LWE1/LWE2/LWS1 header"
            case .badMagic: return "not an N2HE ciphertext (magic is not LWE1, LWE2 or LWS1)"
            case .zeroCount: return "header says k = 0 messages"
            case .zeroDimension: return "header says n = 0"
            case .unknownFlags: return "unknown bits in the header's flags byte"
            case .seededFlagMismatch: return "the seeded flag does not match the format (LWE2 and LWS1 need it, LWE1 must not have it)"
            case .scalarWithCountNotOne: return "scalar form (batch flag clear) with k ≠ 1"
            case .sizeOverflow: return "header sizes k·n are too large"
            case .seedCountOutOfRange: return "a seeded sum with no seed or more than \(N2HESeededSum.maximumSeeds)"
            }
        case .dimensionMismatch(let expected, let actual):
            return "written for n = \(actual), but the key has n = \(expected)"
        case .lengthMismatch(let expected, let actual):
            return "\(actual) bytes, but its header means \(expected) bytes (truncated or padded file?)"
        default:
            return "\(error)"
        }
    }
}
