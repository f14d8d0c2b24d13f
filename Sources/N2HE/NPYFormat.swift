/// The subset of the numpy `.npy` format the TensorGuard SDK uses for keys: a 1-D little-endian int64 array.
/// Parsing is total: every malformation is an `N2HEError.malformedKeyFile`, never a trap.
enum NPYFormat {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Parses the header of a `.npy` file of shape (n,), dtype '<i8', C order; checks the total length.
    /// Returns n and the offset of the data.
    static func parseHeader(_ file: UnsafeRawBufferPointer) throws -> (count: Int, dataOffset: Int) {
        func byte(_ i: Int) -> UInt8 { file[i] }
        guard file.count >= 6 else {
            throw N2HEError.malformedKeyFile(file.count == 0 || !magic.starts(with: file) ? .badMagic : .truncated)
        }
        guard file.prefix(6).elementsEqual(magic) else { throw N2HEError.malformedKeyFile(.badMagic) }
        guard file.count >= 8 else { throw N2HEError.malformedKeyFile(.truncated) }
        let major = byte(6), minor = byte(7)
        let headerStart: Int
        let headerLength: Int
        switch (major, minor) {
        case (1, 0):
            guard file.count >= 10 else { throw N2HEError.malformedKeyFile(.truncated) }
            headerStart = 10
            headerLength = Int(byte(8)) | Int(byte(9)) << 8
        case (2, 0):
            guard file.count >= 12 else { throw N2HEError.malformedKeyFile(.truncated) }
            headerStart = 12
            headerLength = Int(byte(8)) | Int(byte(9)) << 8 | Int(byte(10)) << 16 | Int(byte(11)) << 24
        default:
            throw N2HEError.malformedKeyFile(.unsupportedVersion(major: major, minor: minor))
        }
        // headerLength < 2^32 and headerStart ≤ 12: no overflow on 64-bit Int.
        let dataOffset = headerStart + headerLength
        guard file.count >= dataOffset else { throw N2HEError.malformedKeyFile(.truncated) }
        let header = UnsafeRawBufferPointer(rebasing: file[headerStart..<dataOffset])
        let count = try parseDictionary(header)
        let dataBytes = file.count - dataOffset
        let expected = count * 8  // count ≤ dimensionRange.upperBound
        if dataBytes < expected { throw N2HEError.malformedKeyFile(.truncated) }
        if dataBytes > expected { throw N2HEError.malformedKeyFile(.trailingBytes) }
        return (count, dataOffset)
    }

    /// Parses `{'descr': '<i8', 'fortran_order': False, 'shape': (n,), }` followed by spaces and a newline.
    private static func parseDictionary(_ h: UnsafeRawBufferPointer) throws -> Int {
        guard h.allSatisfy({ $0 < 0x80 }) else { throw N2HEError.malformedKeyFile(.headerNotASCII) }
        guard h.last == UInt8(ascii: "\n") else { throw N2HEError.malformedKeyFile(.headerNotTerminated) }
        var i = 0
        let end = h.count
        func skipSpace() {
            while i < end, h[i] == 0x20 || h[i] == 0x09 || h[i] == 0x0A || h[i] == 0x0D { i += 1 }
        }
        func expect(_ c: Character) throws {
            skipSpace()
            guard i < end, let a = c.asciiValue, h[i] == a else { throw N2HEError.malformedKeyFile(.headerSyntax) }
            i += 1
        }
        func peek(_ c: Character) -> Bool {
            skipSpace()
            guard i < end, let a = c.asciiValue else { return false }
            return h[i] == a
        }
        func stringLiteral() throws -> [UInt8] {
            skipSpace()
            guard i < end, h[i] == UInt8(ascii: "'") || h[i] == UInt8(ascii: "\"") else {
                throw N2HEError.malformedKeyFile(.headerSyntax)
            }
            let quote = h[i]
            i += 1
            var out: [UInt8] = []
            while i < end, h[i] != quote {
                if h[i] == UInt8(ascii: "\\") || h[i] == 0x0A { throw N2HEError.malformedKeyFile(.headerSyntax) }
                out.append(h[i])
                i += 1
            }
            guard i < end else { throw N2HEError.malformedKeyFile(.headerSyntax) }
            i += 1
            return out
        }
        func identifier() -> [UInt8] {
            skipSpace()
            var out: [UInt8] = []
            while i < end, (h[i] >= 0x41 && h[i] <= 0x5A) || (h[i] >= 0x61 && h[i] <= 0x7A) || h[i] == 0x5F {
                out.append(h[i])
                i += 1
            }
            return out
        }

        var descr: [UInt8]?
        var fortran: Bool?
        var shape: Int?
        try expect("{")
        while !peek("}") {
            let key = try stringLiteral()
            try expect(":")
            switch String(decoding: key, as: UTF8.self) {
            case "descr":
                guard descr == nil else { throw N2HEError.malformedKeyFile(.duplicateField) }
                descr = try stringLiteral()
            case "fortran_order":
                guard fortran == nil else { throw N2HEError.malformedKeyFile(.duplicateField) }
                switch String(decoding: identifier(), as: UTF8.self) {
                case "False": fortran = false
                case "True": fortran = true
                default: throw N2HEError.malformedKeyFile(.headerSyntax)
                }
            case "shape":
                guard shape == nil else { throw N2HEError.malformedKeyFile(.duplicateField) }
                try expect("(")
                skipSpace()
                var value = 0, digits = 0
                while i < end, h[i] >= 0x30, h[i] <= 0x39 {
                    guard digits < 9 else { throw N2HEError.malformedKeyFile(.badShape) }
                    value = value * 10 + Int(h[i] - 0x30)
                    digits += 1
                    i += 1
                }
                // Exactly one dimension: "(n,)" — "()" or "(a, b)" is not a key.
                guard digits > 0, peek(",") else { throw N2HEError.malformedKeyFile(.badShape) }
                i += 1
                guard peek(")") else { throw N2HEError.malformedKeyFile(.badShape) }
                i += 1
                guard N2HEParameters.dimensionRange.contains(value) else { throw N2HEError.malformedKeyFile(.badShape) }
                shape = value
            default:
                throw N2HEError.malformedKeyFile(.unknownField)
            }
            if peek(",") { i += 1 } else { guard peek("}") else { throw N2HEError.malformedKeyFile(.headerSyntax) } }
        }
        i += 1  // '}'
        skipSpace()
        guard i == end else { throw N2HEError.malformedKeyFile(.headerSyntax) }
        guard let d = descr, let f = fortran, let n = shape else { throw N2HEError.malformedKeyFile(.missingField) }
        guard d == Array("<i8".utf8) else { throw N2HEError.malformedKeyFile(.unsupportedDType) }
        guard !f else { throw N2HEError.malformedKeyFile(.fortranOrder) }
        return n
    }

    /// The header numpy ≥ 1.x `np.save` writes for an int64 vector of length n (version 1.0, 64-byte aligned).
    static func header(count n: Int) -> [UInt8] {
        var dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (\(n),), }"
        dict += String(repeating: " ", count: max(0, 21 - String(n).count))  // numpy's growth-axis spare space
        let hlen = dict.utf8.count + 1
        let padding = 64 - ((6 + 2 + 2 + hlen) % 64)
        let total = hlen + padding
        var out = magic + [1, 0, UInt8(total & 0xFF), UInt8((total >> 8) & 0xFF)]
        out += Array(dict.utf8)
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }
}
