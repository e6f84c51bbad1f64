/// The name of one of an instance's webhooks (SPEC §4): `^[A-Za-z0-9_.-]{1,64}$`. A request that
/// omits the label, or sends `""`, means `default`; that mapping lives in the `requested`
/// functions, so a `WebhookLabel` value always holds a label as stored, never `""`.
public struct WebhookLabel: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let name: String

    public static let maxBytes = 64
    public static let `default` = WebhookLabel(unchecked: "default")

    /// A stored label: nil unless `name` matches the rule (so `""` is nil here).
    public init?(_ name: String) {
        guard WebhookLabel.isValid(name) else { return nil }
        self.name = name
    }

    private init(unchecked name: String) { self.name = name }

    public static func isValid(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= maxBytes && u.allSatisfy(isLabelByte)
    }

    /// The label a request names by a string (a body member or `?label=`): `""` means `default`.
    public static func requested(_ s: String) -> WebhookLabel? {
        s.isEmpty ? .default : WebhookLabel(s)
    }

    /// The label named by a body member: absent or `""` means `default`. JSON `null` is invalid,
    /// not a third way to say `default`: SPEC §4 counts `null` among invalid bodies for the
    /// WebSocket POST, and the webhook POST and DELETE ask for a string.
    public static func requested(_ value: JSONValue?) -> WebhookLabel? {
        switch value {
        case nil: return .default
        case .string(let s)?: return requested(s)
        default: return nil
        }
    }

    /// Labels are ASCII, so byte order is the order of SPEC's "sorted by label".
    public static func < (a: WebhookLabel, b: WebhookLabel) -> Bool {
        a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
    }

    public var description: String { name }

    private static func isLabelByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
