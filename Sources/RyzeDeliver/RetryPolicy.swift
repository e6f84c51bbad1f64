#if canImport(Glibc)
import Glibc
#endif

/// When the next attempt of a delivery is due after a failed one (SPEC §6.3): the waits of the
/// schedule, each ±10 % at random, a longer `Retry-After` (on 429 and 503 only) honoured up to
/// 24 h; after the last wait, no more attempts.
public struct RetryPolicy: Sendable {
    /// The waits after each failed attempt, in seconds: attempts in all = waits + 1.
    public let waits: [Double]
    /// ± this fraction of each wait, uniformly.
    public let jitter: Double
    /// The longest `Retry-After` honoured, seconds.
    public let maxRetryAfter: Double

    public static let defaultSchedule = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

    public init(waits: [Double], jitter: Double = 0.1, maxRetryAfter: Double = 86_400) {
        self.waits = waits
        self.jitter = jitter
        self.maxRetryAfter = maxRetryAfter
    }

    public var attempts: Int { waits.count + 1 }

    /// `5s,5m,30m,2h`: durations separated by commas (see `Duration.parse`); nil when one is not.
    public static func parse(_ schedule: String) -> RetryPolicy? {
        let parts = schedule.split(separator: ",", omittingEmptySubsequences: false)
        var waits: [Double] = []
        for p in parts {
            guard let d = DurationText.parse(String(p).trimmingSpaces), d > 0 else { return nil }
            waits.append(d)
        }
        return waits.isEmpty ? nil : RetryPolicy(waits: waits)
    }

    /// The wait after failed attempt `attempt` (1 for the first), or nil when it was the last.
    /// `retryAfter`: seconds the receiver asked for (only pass it for a 429 or a 503).
    /// `random`: a value in [0, 1), for the jitter.
    public func wait(afterAttempt attempt: Int, retryAfter: Double?, random: Double) -> Double? {
        guard attempt >= 1, attempt <= waits.count else { return nil }
        let base = waits[attempt - 1] * (1 - jitter + 2 * jitter * random)
        guard let asked = retryAfter, asked > base else { return base }
        return max(base, min(asked, maxRetryAfter))
    }

    /// A `Retry-After` value as seconds from `now` (Unix seconds): delay-seconds, or an HTTP
    /// date (IMF-fixdate, or the obsolete RFC 850 and asctime forms). nil when it is neither;
    /// a date in the past is 0.
    public static func retryAfterSeconds(_ value: String, now: Double) -> Double? {
        let v = value.trimmingSpaces
        if !v.isEmpty, v.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return v.utf8.count > 9 ? Double.greatestFiniteMagnitude : Double(v)
        }
        guard let t = HTTPDate.parse(v) else { return nil }
        return max(0, t - now)
    }
}

/// An HTTP date (RFC 9110 §5.6.7) as Unix seconds: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`,
/// and the obsolete forms a recipient must still read, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
/// and asctime `Sun Nov  6 08:49:37 1994`. Parsed by hand: strptime is not in Swift's Glibc.
enum HTTPDate {
    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    static func parse(_ text: String) -> Double? {
        var tokens = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" || $0 == ":" }).map(String.init)
        guard tokens.count >= 7 else { return nil }
        tokens.removeFirst()   // the day of the week
        func month(_ s: String) -> Int? { months.firstIndex(of: s.lowercased()).map { $0 + 1 } }
        let day: Int?, mon: Int?, year: Int?, clock: ArraySlice<String>
        if let m = month(tokens[0]) {
            // asctime: Mon D hh mm ss YYYY
            guard tokens.count == 6 else { return nil }
            (mon, day, year, clock) = (m, Int(tokens[1]), Int(tokens[5]), tokens[2...4])
        } else {
            // IMF-fixdate or RFC 850: DD Mon YYYY|YY hh mm ss GMT
            guard tokens.count == 7, tokens[6] == "GMT" else { return nil }
            var y = Int(tokens[2])
            // A two-digit year: 70-99 are 19xx, 00-69 are 20xx.
            if let two = y, tokens[2].count == 2 { y = two < 70 ? 2000 + two : 1900 + two }
            (day, mon, year, clock) = (Int(tokens[0]), month(tokens[1]), y, tokens[3...5])
        }
        let hms = clock.compactMap { Int($0) }
        guard let day, let mon, let year, hms.count == 3, (1...31).contains(day), (0...23).contains(hms[0]),
              (0...59).contains(hms[1]), (0...60).contains(hms[2]) else { return nil }
        return Double(daysFromCivil(year: year, month: mon, day: day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// `30s`, `5m`, `2h`, `7d`, or a plain number of seconds; fractions allowed (`1.5s`).
public enum DurationText {
    public static func parse(_ text: String) -> Double? {
        guard let last = text.last else { return nil }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        let (number, unit) = units[last].map { (String(text.dropLast()), $0) } ?? (text, 1)
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let value = Double(number), value.isFinite, value >= 0 else { return nil }
        return value * unit
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}
