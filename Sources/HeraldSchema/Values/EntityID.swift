/// Entity ids: 32 lowercase hexadecimal characters, a UUID without dashes, as Structr uses.
public enum EntityID {
    /// A new random id.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 32)
        for chunk in 0..<2 {
            var bits = generator.next() as UInt64
            for i in 0..<16 {
                out[chunk * 16 + i] = hex[Int(bits & 0xF)]
                bits >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `text` has the form of an entity id.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 32
            && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
