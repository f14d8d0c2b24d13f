extension BinaryInteger {
    /// The digits of the value in `radix`, left-padded with zeros to `width` — `String(format: "%0*d")` without
    /// Foundation, for timestamps, CK_TOKEN_INFO.utcTime and hex codes in messages.
    public func zeroPadded(_ width: Int, radix: Int = 10, uppercase: Bool = false) -> String {
        let digits = String(self, radix: radix, uppercase: uppercase)
        return String(repeating: "0", count: max(0, width - digits.utf8.count)) + digits
    }
}
