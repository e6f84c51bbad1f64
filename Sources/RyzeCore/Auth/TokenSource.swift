/// Where a request's token comes from, in the contract's order: `token` header,
/// `Authorization: Bearer`, then the `token` query parameter. Empty values count as absent.
public enum TokenSource {
    public static func token(in request: HTTPRequest) -> String? {
        if let t = request.headers[.token]?.trimmedSpaces, !t.isEmpty { return t }
        if let auth = request.headers[.authorization] {
            let parts = auth.trimmedSpaces.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let t = parts[1].trimmedSpaces
                if !t.isEmpty { return t }
            }
        }
        if let t = request.queryValue("token"), !t.isEmpty { return t }
        return nil
    }
}

extension String {
    var trimmedSpaces: String {
        // Almost every value has nothing to trim: answer without building substrings.
        let u = utf8
        if let f = u.first, let l = u.last, f != 0x20, f != 0x09, l != 0x20, l != 0x09 { return self }
        return Substring(self).trimmedSpaces
    }
}

extension Substring {
    var trimmedSpaces: String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
