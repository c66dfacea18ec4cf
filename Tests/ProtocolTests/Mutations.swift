/// Random one-to-three-byte changes (replace, insert, delete) of a message, for the differential
/// checks of the fast readers against libxml2.
enum Mutations {
    static func of(
        _ original: [UInt8], count: Int, alphabet: [UInt8], using generator: inout some RandomNumberGenerator
    ) -> [[UInt8]] {
        (0..<count).map { _ in
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = alphabet.randomElement(using: &generator)!
                case 1: bytes.insert(alphabet.randomElement(using: &generator)!, at: index)
                default: if bytes.count > 1 { bytes.remove(at: index) }
                }
            }
            return bytes
        }
    }
}
