#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Lines to standard output and standard error that never stop a run. Foundation's
/// `FileHandle.write(_:)` traps when the write fails (`try!` inside): with standard output on
/// a full disk, the first report line after the disk filled killed the measurement. Here a
/// failed write to standard output is said once on standard error and the run goes on; a
/// failed write to standard error is dropped (there is nowhere left to say it).
public enum StandardStreams {
    private static let outputFailed = Atomic<Bool>(false)

    /// One line (a newline is added) to standard output, written through at once (pipes).
    public static func out(_ line: String) {
        guard let failure = writeAll(line + "\n", to: 1) else { return }
        if !outputFailed.exchange(true, ordering: .relaxed) {
            _ = writeAll("standard output: \(failure); report lines from now on are lost\n", to: 2)
        }
    }

    /// One line (a newline is added) to standard error.
    public static func err(_ line: String) {
        _ = writeAll(line + "\n", to: 2)
    }

    /// Writes all of `text` to a descriptor (retrying short writes and EINTR); nil when every
    /// byte was written, else why not (strerror).
    public static func writeAll(_ text: String, to descriptor: CInt) -> String? {
        var text = text
        return text.withUTF8 { bytes -> String? in
            var offset = 0
            while offset < bytes.count {
                let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                offset += written
            }
            return nil
        }
    }
}

// At file scope: inside the enum, `write` would name its own methods.
private func systemWrite(_ descriptor: CInt, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
