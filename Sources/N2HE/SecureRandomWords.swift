import COpenSSL
import CryptoCore

/// A buffered reader of CSPRNG 64-bit words (RAND_bytes in 4 KiB chunks); zeroises its buffer on release.
final class SecureRandomWords {
    private let capacity = 512
    private let buffer: UnsafeMutablePointer<UInt64>
    private var position: Int

    init() {
        buffer = .allocate(capacity: capacity)
        buffer.initialize(repeating: 0, count: capacity)
        position = capacity
    }

    deinit {
        secureZero(buffer, count: capacity * 8)
        buffer.deallocate()
    }

    func next() throws -> UInt64 {
        if position == capacity {
            try SecureRandom.fill(UnsafeMutableRawBufferPointer(start: buffer, count: capacity * 8))
            position = 0
        }
        let value = buffer[position]
        position += 1
        return value
    }
}
