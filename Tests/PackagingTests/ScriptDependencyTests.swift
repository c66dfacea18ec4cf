import Foundation
import XCTest

/// Every script that builds products installs the Debian providers of every system library
/// those products link. The manifest's `providers:` is the single source; the scripts name
/// areas of `scripts/deps/`. A fresh machine (base image only) found the demo missing
/// libpcap-dev once; CI could not see it because the test script installs every list.
final class ScriptDependencyTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// What the manifest says: products → targets, target → local dependencies, system
    /// library → apt providers.
    private struct Graph {
        var products: [String: [String]] = [:]
        var dependencies: [String: [String]] = [:]
        var aptProviders: [String: [String]] = [:]
        var systemLibraries: Set<String> = []

        /// The apt packages the system libraries in the closure of these targets need.
        func providers(ofTargets roots: [String]) -> [String: [String]] {
            var seen = Set<String>()
            var stack = roots
            while let target = stack.popLast() {
                guard seen.insert(target).inserted else { continue }
                stack += dependencies[target] ?? []
            }
            return aptProviders.filter { seen.contains($0.key) }
        }
    }

    private static func loadGraph() throws -> Graph {
        // A scratch path of its own: `swift test` holds the lock on .build.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vtpbench-dump-\(getpid())")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "package", "--scratch-path", scratch.path, "dump-package"]
        process.currentDirectoryURL = root
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "swift package dump-package failed (status \(process.terminationStatus))"])
        }
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var graph = Graph()
        for product in manifest["products"] as? [[String: Any]] ?? [] {
            graph.products[product["name"] as? String ?? ""] = product["targets"] as? [String] ?? []
        }
        let targets = manifest["targets"] as? [[String: Any]] ?? []
        let localNames = Set(targets.compactMap { $0["name"] as? String })
        for target in targets {
            let name = target["name"] as? String ?? ""
            var local: [String] = []
            for dependency in target["dependencies"] as? [[String: Any]] ?? [] {
                for key in ["byName", "target"] {
                    if let value = (dependency[key] as? [Any])?.first as? String, localNames.contains(value) {
                        local.append(value)
                    }
                }
            }
            graph.dependencies[name] = local
            if target["type"] as? String == "system" {
                graph.systemLibraries.insert(name)
                let providers = target["providers"] as? [[String: Any]] ?? []
                graph.aptProviders[name] = providers.flatMap { ($0["apt"] as? [[String]])?.flatMap { $0 } ?? [] }
            }
        }
        return graph
    }

    /// What one script builds and which dependency areas it installs, read from its text.
    private struct ScriptUse {
        var name: String
        var products: Set<String> = []
        var buildsEverything = false
        var areas: Set<String>? = nil  // nil: never calls setup-deps; empty set: every area
    }

    private static func readScript(_ url: URL) throws -> ScriptUse {
        let text = try String(contentsOf: url, encoding: .utf8)
        var use = ScriptUse(name: url.lastPathComponent)
        let lines = text.split(separator: "\n").map { String($0) }.filter {
            !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#")
        }
        let productFlag = try NSRegularExpression(pattern: #"--product\s+"?([A-Za-z][A-Za-z0-9_-]*)"?"#)
        let productLoop = try NSRegularExpression(pattern: #"for\s+product\s+in\s+([^;]+);"#)
        // A call may end in a redirect or `|| exit 2`.
        let setupCall = try NSRegularExpression(pattern: #"^\s*(?:"\$root/)?scripts/setup-deps"?((?:\s+[a-z][a-z0-9-]*)*)\s*(?:[>|&;].*)?$"#)
        for line in lines {
            let range = NSRange(line.startIndex..., in: line)
            for match in productFlag.matches(in: line, range: range) {
                use.products.insert(String(line[Range(match.range(at: 1), in: line)!]))
            }
            for match in productLoop.matches(in: line, range: range) {
                let names = line[Range(match.range(at: 1), in: line)!].split(separator: " ").map(String.init)
                use.products.formUnion(names)
            }
            if line.contains("swift build"), !line.contains("--product"), !line.contains("--show-bin-path"),
                !line.contains("echo ")
            {
                use.buildsEverything = true
            }
            if let match = setupCall.firstMatch(in: line, range: range) {
                let words = line[Range(match.range(at: 1), in: line)!].split(separator: " ").map(String.init)
                if words.isEmpty {
                    use.areas = []
                } else if use.areas != [] {
                    use.areas = (use.areas ?? []).union(words)
                }
            }
        }
        return use
    }

    private static func packages(inAreas areas: Set<String>) throws -> Set<String> {
        let deps = root.appendingPathComponent("scripts/deps")
        let files = areas.isEmpty
            ? try FileManager.default.contentsOfDirectory(atPath: deps.path).filter { $0.hasSuffix(".txt") }
            : areas.map { "\($0).txt" }
        var packages = Set<String>()
        for file in files {
            let text = try String(contentsOf: deps.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                packages.formUnion(content.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init))
            }
        }
        return packages
    }

    private func scripts() throws -> [ScriptUse] {
        let directory = Self.root.appendingPathComponent("scripts")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().compactMap { name in
            let url = directory.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
            return isDirectory.boolValue ? nil : try Self.readScript(url)
        }
    }

    func testEverySystemLibraryDeclaresItsDebianProvider() throws {
        let graph = try Self.loadGraph()
        XCTAssertFalse(graph.systemLibraries.isEmpty, "the manifest has system-library targets")
        for library in graph.systemLibraries.sorted() {
            XCTAssertFalse(graph.aptProviders[library, default: []].isEmpty, "\(library) has no providers: [.apt([…])]")
        }
    }

    func testEveryScriptInstallsTheProvidersOfWhatItBuilds() throws {
        let graph = try Self.loadGraph()
        let uses = try scripts()
        XCTAssertTrue(uses.contains { $0.name == "demo" }, "scripts/demo read")
        var checked = 0
        for use in uses where use.buildsEverything || !use.products.isEmpty {
            for product in use.products {
                XCTAssertNotNil(graph.products[product], "scripts/\(use.name) builds \(product), which the manifest lacks")
            }
            let roots = use.buildsEverything
                ? Array(graph.dependencies.keys) : use.products.flatMap { graph.products[$0] ?? [] }
            let needed = graph.providers(ofTargets: roots)
            guard let areas = use.areas else {
                XCTAssertTrue(needed.isEmpty, "scripts/\(use.name) builds \(use.products.sorted()) but never runs scripts/setup-deps; it needs \(needed)")
                continue
            }
            let installed = try Self.packages(inAreas: areas)
            for (library, packages) in needed.sorted(by: { $0.key < $1.key }) {
                for package in packages {
                    XCTAssertTrue(
                        installed.contains(package),
                        "scripts/\(use.name) builds \(use.products.sorted()), which link \(library); its setup-deps areas \(areas.sorted()) do not install \(package)")
                }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 8, "every building script was read")
    }

    /// The README's first command: the demo's products need both libraries; the parser must see that.
    func testTheDemoNeedsLibxml2AndLibpcap() throws {
        let graph = try Self.loadGraph()
        let demo = try Self.readScript(Self.root.appendingPathComponent("scripts/demo"))
        XCTAssertEqual(demo.products, ["vtp-sender", "vtp-receiver"])
        let needed = Set(graph.providers(ofTargets: demo.products.flatMap { graph.products[$0] ?? [] }).values.joined())
        XCTAssertEqual(needed, ["libxml2-dev", "libpcap-dev"])
        let installed = try Self.packages(inAreas: try XCTUnwrap(demo.areas))
        XCTAssertTrue(needed.isSubset(of: installed), "demo installs \(installed.sorted())")
    }
}
