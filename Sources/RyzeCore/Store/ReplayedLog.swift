/// What a log folds into: the state that replaying its records in order leaves behind. `State`
/// is `events.log`'s. `AppendLog` needs nothing else of it.
public protocol ReplayedLog: Sendable {
    associatedtype Entry: LogEntry
    static var kind: LogKind { get }
    init()
    /// Records were checked against the state when written, under the deployment-wide write
    /// lock, so a record that no longer fits is skipped, not fatal.
    mutating func apply(_ record: Entry)
    /// Records applied since the log began (or since its last compaction).
    var recordCount: Int { get }
    /// How many records `liveRecords` holds: what a compaction would leave.
    var liveRecordCount: Int { get }
    /// Records that would rebuild this state from nothing: what compaction writes.
    var liveRecords: [Entry] { get }
}

extension State: ReplayedLog {
    public static var kind: LogKind { .events }
}
