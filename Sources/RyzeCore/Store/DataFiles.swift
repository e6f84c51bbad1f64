#if canImport(Glibc)
import Glibc
#endif

/// The files of a data directory and the few system calls every unit of the store needs on them.
/// The directory is created 0700 and every file 0600: tokens are stored as digests, but the
/// log still says who owns what.
public struct DataFiles: Sendable {
    public let directory: String
    /// The log's base name: `events` for `events.log`, `events.lock` and `events.seq`.
    public let name: String
    public var log: String { directory + "/" + name + ".log" }
    var lock: String { directory + "/" + name + ".lock" }
    var changeCounter: String { directory + "/" + name + ".seq" }
    var compactionTemporary: String { log + ".compact" }

    public init(directory: String, name: String = LogKind.events.name) {
        self.directory = directory
        self.name = name
    }

    /// Creates the directory (and missing parents) 0700; an existing one is used as it is.
    public func makeDirectory() throws(StoreError) {
        var st = stat()
        if stat(directory, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw StoreError.unusable("data directory \(directory) is not a directory") }
            return
        }
        var prefix = directory.hasPrefix("/") ? "" : "."
        for part in directory.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST {
                throw StoreError.unusable("cannot create data directory \(directory): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Makes a rename or a file creation in the directory durable.
    func syncDirectory() throws(StoreError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError.errno("cannot open directory \(directory)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError.errno("fsync of directory \(directory) failed") }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw StoreError.errno("write to \(path) failed") }
            done += n
        }
    }
}

/// Device and inode: how a follower tells that compaction renamed a new file over the log.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init(device: UInt64, inode: UInt64) { self.device = device; self.inode = inode }
    init(_ st: stat) { device = UInt64(st.st_dev); inode = UInt64(st.st_ino) }

    static let none = FileIdentity(device: 0, inode: 0)
}
