#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output files are checked before anything is measured, so a typo in a path never costs a run.
public enum OutputPaths {
    public struct Unwritable: Error, CustomStringConvertible {
        public var flag: String
        public var path: String
        public var reason: String
        public var description: String { "\(flag) \(path): \(reason)" }
    }

    /// Throws when `path` cannot be created or overwritten: its directory is missing or not
    /// writable, or it names a directory or a read-only file. Creates nothing.
    public static func check(_ path: String, flag: String) throws(Unwritable) {
        guard !path.isEmpty else { throw Unwritable(flag: flag, path: "\"\"", reason: "empty path") }
        var status = stat()
        if stat(path, &status) == 0 {
            if (status.st_mode & S_IFMT) == S_IFDIR { throw Unwritable(flag: flag, path: path, reason: "is a directory") }
            if access(path, W_OK) != 0 { throw Unwritable(flag: flag, path: path, reason: "not writable") }
            return
        }
        let directory = parent(of: path)
        guard stat(directory, &status) == 0 else {
            throw Unwritable(flag: flag, path: path, reason: "directory \(directory) does not exist")
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else {
            throw Unwritable(flag: flag, path: path, reason: "\(directory) is not a directory")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw Unwritable(flag: flag, path: path, reason: "directory \(directory) is not writable")
        }
    }

    /// Checks each (flag, path) whose path is set; the first problem is thrown.
    public static func check(_ outputs: [(flag: String, path: String?)]) throws(Unwritable) {
        for output in outputs {
            if let path = output.path { try check(path, flag: output.flag) }
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}
