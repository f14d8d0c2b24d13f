// The SDK's key files (N2HE-SPEC §4): TensorGuard's numpy `.npy` and TensorGuardFlow's raw `.bin`
// (8n bytes), parsed by the N2HE library, plus the `.meta.json` TensorGuardFlow writes beside the raw key.
// The module validates the key again on C_CreateObject; these checks fail early with a message naming the file.
// Error messages name positions and sizes, never key values.
import Foundation
import N2HE

enum KeyFile {
    static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59] // \x93NUMPY

    /// Reads and validates a key file with the N2HE library's parsers: numpy `.npy` when the file starts
    /// with the numpy magic or is named `*.npy`, else the raw form. Returns the raw form (8n bytes,
    /// little-endian int64 in {-1, 0, 1}) in a SecretBuffer, and n. The file buffer is zeroised on return.
    static func load(path: String) throws -> (key: SecretBuffer, n: Int) {
        let file = try Files.readSecret(path, what: "key file")
        guard file.count > 0 else { throw CLIError("key file '\(path)' is empty") }
        let isNPY = file.withUnsafeBytes { $0.starts(with: npyMagic) } || path.hasSuffix(".npy")
        let key: N2HESecretKey
        do {
            key = try file.withUnsafeBytes { bytes in
                isNPY ? try N2HESecretKey(npyFile: bytes) : try N2HESecretKey(rawRepresentation: bytes)
            }
        } catch let error as N2HEError {
            throw CLIError("key file '\(path)': " + describe(error, npy: isNPY))
        }
        let raw = key.withRawRepresentation { SecretBuffer(copying: $0) }
        return (raw, key.n)
    }

    /// A message for a key-file error; positions and sizes only, never key values.
    static func describe(_ error: N2HEError, npy: Bool) -> String {
        let form = npy ? "bad .npy file" : "bad raw key"
        switch error {
        case .invalidKeyEntry(let index):
            return "entry \(index) is not in {-1, 0, 1}; not an N2HE ternary secret key"
        case .invalidKeyLength(_, let actual):
            if actual % 8 != 0 {
                return "\(form): \(actual) bytes is not a multiple of 8 (a raw key is 8·n bytes of little-endian int64)"
            }
            return "\(form): \(actual) bytes means n = \(actual / 8), outside the supported 1…\(N2HEParameters.dimensionRange.upperBound)"
        case .unsupportedParameters(.dimensionOutOfRange(let n)):
            return "\(form): n = \(n) is outside the supported 1…\(N2HEParameters.dimensionRange.upperBound)"
        case .dimensionMismatch(let expected, let actual):
            return "\(form): n = \(actual), expected \(expected)"
        case .malformedKeyFile(let defect):
            let why: String
            switch defect {
            case .badMagic: why = "missing the \\x93NUMPY magic"
            case .truncated: why = "truncated (shorter than its header says)"
            case .unsupportedVersion(let major, let minor): why = "unsupported .npy format version \(major).\(minor)"
            case .headerNotASCII: why = "header is not ASCII"
            case .headerSyntax: why = "header is not the dict numpy writes"
            case .headerNotTerminated: why = "header does not end with a newline"
            case .duplicateField: why = "header repeats a field"
            case .unknownField: why = "header has an unknown field"
            case .missingField: why = "header lacks 'descr', 'fortran_order' or 'shape'"
            case .unsupportedDType: why = "wrong dtype: an N2HE key is little-endian int64 ('<i8')"
            case .fortranOrder: why = "fortran_order arrays are not supported"
            case .badShape: why = "shape is not a 1-D (n,) with a supported n"
            case .trailingBytes: why = "unexpected bytes after the array data"
            }
            return "bad .npy file: \(why)"
        default:
            return "\(form): \(error)"
        }
    }
}

/// TensorGuardFlow's `<name>.meta.json`: `{"params": {"n": …, "q": …, "t": …, "mu": …}, …}`.
struct KeyMetadata: Equatable {
    let n: Int
    let modulusBits: Int
    let plaintextBits: Int
    /// μ × 1000 when `mu` is present.
    let noiseMilli: Int?

    static func load(path: String) throws -> KeyMetadata {
        let bytes = try Files.read(path, what: "metadata file")
        return try parse(Data(bytes), path: path)
    }

    static func parse(_ data: Data, path: String) throws -> KeyMetadata {
        func fail(_ why: String) -> CLIError { CLIError("metadata file '\(path)': \(why)") }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw fail("not valid JSON")
        }
        guard let top = json as? [String: Any] else { throw fail("not a JSON object") }
        guard let params = top["params"] as? [String: Any] else { throw fail("no \"params\" object") }

        func integer(_ key: String) throws -> UInt64 {
            guard let value = params[key] else { throw fail("params has no \"\(key)\"") }
            guard let number = value as? NSNumber, !isJSONBool(value) else {
                throw fail("params.\(key) is not a number")
            }
            let d = number.doubleValue
            guard d >= 1, d <= 9.007199254740992e15, d.rounded() == d else {
                throw fail("params.\(key) is not a positive integer")
            }
            return UInt64(d)
        }
        func log2Exact(_ v: UInt64) -> Int? { v.nonzeroBitCount == 1 ? v.trailingZeroBitCount : nil }

        let n = try integer("n")
        guard n <= 1 << 20 else { throw fail("params.n = \(n) is not a plausible dimension") }
        let q = try integer("q")
        guard let qBits = log2Exact(q), qBits == 32 || qBits == 48 else {
            throw fail("params.q = \(q) is not supported; q must be 2^32 (4294967296) or 2^48 (281474976710656)")
        }
        let t = try integer("t")
        guard let tBits = log2Exact(t) else { throw fail("params.t = \(t) is not a power of two") }
        guard tBits >= 1, tBits < qBits else { throw fail("params.t = 2^\(tBits) must be between 2 and q/2") }

        var noiseMilli: Int?
        if let mu = params["mu"] {
            guard let number = mu as? NSNumber, !isJSONBool(mu) else { throw fail("params.mu is not a number") }
            let milli = (number.doubleValue * 1000).rounded()
            guard milli >= 1, milli <= 100_000 else { throw fail("params.mu = \(number) is outside 0.001…100") }
            noiseMilli = Int(milli)
        }
        return KeyMetadata(n: Int(n), modulusBits: qBits, plaintextBits: tBits, noiseMilli: noiseMilli)
    }
}

/// JSONSerialization answers `true`/`false` as NSNumber on some platforms; tell them apart from 1 and 0.
private func isJSONBool(_ value: Any) -> Bool {
    if let number = value as? NSNumber {
        return String(cString: number.objCType) == "c"  // numbers come back as i/q/d
    }
    return value is Bool
}
