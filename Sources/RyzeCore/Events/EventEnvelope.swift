/// SPEC §6's envelope, exactly `{"event", "data", "instanceData": {"baseUrl", "instance"}}`,
/// built around the producer's own bytes of `data`.
public enum EventEnvelope {
    static func make(event: EventType, data: ArraySlice<UInt8>, baseURL: String, instance: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + baseURL.utf8.count + instance.utf8.count + 80)
        out.appendUTF8(#"{"event":""#)
        out.appendUTF8(event.name)
        out.appendUTF8(#"","data":"#)
        out.append(contentsOf: data)
        out.appendUTF8(#","instanceData":{"baseUrl":"#)
        JSONValue.writeString(baseURL, into: &out)
        out.appendUTF8(#","instance":"#)
        JSONValue.writeString(instance, into: &out)
        out.appendUTF8("}}")
        return out
    }

    /// The envelope for a channel whose `mediaBase64` is false: without `data.message.media.base64`
    /// (every occurrence of the key, if the producer sent it twice). Unchanged when absent.
    public static func strippingMedia(_ envelope: [UInt8]) -> [UInt8] {
        RawJSON.removingMember(envelope, path: ["data", "message", "media", "base64"])
    }
}

/// Event ids (SPEC §6.1): the producer's own, `^[A-Za-z0-9_.:-]{1,64}$`, or `evt_` and 26
/// base32 characters made here: a ULID (48 bits of milliseconds, 80 random bits), unique and
/// in time order.
public enum EventID {
    public static func isValid(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 64 && u.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
                || c == UInt8(ascii: ":") || c == UInt8(ascii: "-")
        }
    }

    public static func make(nowMicroseconds: UInt64) -> String {
        var rng = SystemRandomNumberGenerator()
        let millis = nowMicroseconds / 1000
        let high = (millis << 16) | UInt64(UInt16.random(in: .min ... .max, using: &rng))   // 64 bits
        let low: UInt64 = rng.next()                                                      // 64 bits
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        var chars = [UInt8](repeating: 0, count: 26)
        // 128 bits as 26 five-bit digits, most significant first (the first digit holds 3 bits).
        for k in 0..<26 {
            let shift = (25 - k) * 5
            let digit: UInt64
            if shift >= 64 {
                digit = (high >> UInt64(shift - 64)) & 31
            } else if shift + 5 <= 64 {
                digit = (low >> UInt64(shift)) & 31 | (shift + 5 > 64 ? 0 : 0)
            } else {
                digit = ((low >> UInt64(shift)) | (high << UInt64(64 - shift))) & 31
            }
            chars[k] = alphabet[Int(digit)]
        }
        return "evt_" + String(decoding: chars, as: UTF8.self)
    }
}
