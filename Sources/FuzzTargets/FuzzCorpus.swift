import Foundation

/// Inputs on disk: the committed corpora (`Fuzz/corpus/TARGET`), the crashes kept as
/// regression inputs (`Fuzz/regressions/TARGET`), and replaying them without the fuzzer.
public enum FuzzCorpus {
    /// Every regular file under `paths` (directories one level deep, as libFuzzer keeps them), sorted.
    public static func files(in paths: [String]) -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        return files
    }

    /// Runs every input through `target`; returns how many ran (a crash does not return).
    @discardableResult
    public static func replay(_ target: FuzzTarget, paths: [String]) -> Int {
        let inputs = files(in: paths)
        for path in inputs {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            data.withUnsafeBytes { target.run($0) }
        }
        return inputs.count
    }

    /// Writes each target's seeds to `directory/TARGET/NAME`; false (with a message) on failure.
    public static func writeSeeds(to directory: String) -> Bool {
        for target in FuzzTarget.all {
            let folder = directory + "/" + target.name
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for (name, bytes) in FuzzSeeds.seeds(for: target.name) {
                    try Data(bytes).write(to: URL(fileURLWithPath: folder + "/" + name))
                }
            } catch {
                FileHandle.standardError.write(Data("vtpbench-fuzz: cannot write \(folder): \(error.localizedDescription)\n".utf8))
                return false
            }
        }
        return true
    }
}
