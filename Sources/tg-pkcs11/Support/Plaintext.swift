// Plaintext vectors (raw little-endian int64 files or a JSON array) and the ciphertext header checks
// done before C_Decrypt (N2HE-SPEC §2), so that a wrong file gets a message naming what is wrong.
import Foundation
import N2HE

enum Plaintext {
    /// `--values '[1, 2, 3]'`: a non-empty JSON array of integers that fit in int64.
    static func parseValues(_ text: String) throws -> [Int64] {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw CLIError("--values is not valid JSON; expected an array of integers like '[1, 2, 3]'")
        }
        guard let array = json as? [Any] else {
            throw CLIError("--values must be a JSON array of integers like '[1, 2, 3]'")
        }
        guard !array.isEmpty else { throw CLIError("--values is empty; give at least one integer") }
        var values: [Int64] = []
        values.reserveCapacity(array.count)
        for (i, item) in array.enumerated() {
            guard let number = item as? NSNumber,
                  "ilqsILQS".contains(String(cString: number.objCType)) else {
                throw CLIError("--values: element \(i) is not an integer")
            }
            // Integers come back as NSNumber with an integer objCType; above Int64 they turn into doubles.
            if String(cString: number.objCType) == "Q", number.uint64Value > UInt64(Int64.max) {
                throw CLIError("--values: element \(i) does not fit in a signed 64-bit integer")
            }
            values.append(number.int64Value)
        }
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
    static func inspect(_ bytes: [UInt8], path: String, keyDimension: Int?) throws -> N2HECiphertextInfo {
        do {
            return try N2HECiphertextInfo(parsing: bytes, expectedDimension: keyDimension)
        } catch let error as N2HEError {
            throw CLIError("ciphertext file '\(path)': " + describe(error))
        }
    }

    static func describe(_ error: N2HEError) -> String {
        switch error {
        case .malformedCiphertext(let defect):
            switch defect {
            case .truncatedHeader: return "too short for an LWE1/LWE2 header"
            case .badMagic: return "not an N2HE ciphertext (magic is not LWE1 or LWE2)"
            case .zeroCount: return "header says k = 0 messages"
            case .zeroDimension: return "header says n = 0"
            case .unknownFlags: return "unknown bits in the header's flags byte"
            case .seededFlagMismatch: return "the seeded flag does not match the format (LWE2 needs it, LWE1 must not have it)"
            case .scalarWithCountNotOne: return "scalar form (batch flag clear) with k ≠ 1"
            case .sizeOverflow: return "header sizes k·n are too large"
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
