/// Entity ids: 32 lowercase hexadecimal characters, a UUID without dashes, as Structr uses.
public enum EntityID {
    /// A new random id.
    public static func generate() -> String { randomHex(bytes: 16) }

    /// `bytes` random bytes from the system generator as lowercase hex (ids, session ids, keys).
    public static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: bytes * 2)
        for chunk in 0..<(bytes + 7) / 8 {
            var bits = generator.next() as UInt64
            for i in 0..<16 where chunk * 16 + i < out.count {
                out[chunk * 16 + i] = hex[Int(bits & 0xF)]
                bits >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `bytes` as lowercase hex, two characters per byte.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` has the form of an entity id.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 32
            && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
