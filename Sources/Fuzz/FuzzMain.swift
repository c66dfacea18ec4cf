#if canImport(Glibc)
import Glibc
#endif
import FuzzTargets

/// Standard error without the C `stderr` global (not concurrency-safe in Swift 6).
func printError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

#if FUZZING
import CLibFuzzer

/// libFuzzer's build: one binary holds every target; VTPBENCH_FUZZ_TARGET says which one runs
/// (scripts/fuzz sets it). SwiftPM gives the executable its own main (this one), which hands
/// the command line to libFuzzer's driver.
private let selectedTarget: FuzzTarget = {
    let name = getenv("VTPBENCH_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget.named(name) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        printError("vtpbench-fuzz: set VTPBENCH_FUZZ_TARGET to one of: \(names)\n")
        exit(64)
    }
    return target
}()

@main
struct FuzzDriver {
    static func main() {
        _ = selectedTarget  // a wrong name stops here, before libFuzzer starts
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            selectedTarget.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        })
    }
}
#else
/// The ordinary build: replays inputs through a target without the fuzzer (a crash found by
/// scripts/fuzz reproduces here under the debugger), and writes the seed corpora.
@main
struct FuzzReplay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "--list":
            for target in FuzzTarget.all { print("\(target.name)\t\(target.summary)") }
        case "seeds" where arguments.count == 2:
            exit(FuzzCorpus.writeSeeds(to: arguments[1]) ? 0 : 2)
        case let name? where arguments.count >= 2:
            guard let target = FuzzTarget.named(name) else { usage("unknown target \"\(name)\"") }
            let replayed = FuzzCorpus.replay(target, paths: Array(arguments.dropFirst()))
            print("vtpbench-fuzz: \(name): \(replayed) inputs replayed, no crash")
        default:
            usage(nil)
        }
    }

    static func usage(_ problem: String?) -> Never {
        if let problem { printError("vtpbench-fuzz: \(problem)\n") }
        printError(
            """
            usage: vtpbench-fuzz --list
                   vtpbench-fuzz TARGET FILE|DIR...   replay inputs (a crash file from scripts/fuzz)
                   vtpbench-fuzz seeds DIR            write the seed corpora to DIR/TARGET/
            Fuzzing itself: scripts/fuzz [--seconds N] [TARGET]

            """)
        exit(64)
    }
}
#endif
