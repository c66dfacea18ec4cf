import Foundation

/// Named network namespaces (`ip netns`), the "hosts" of the lab.
public enum NetworkNamespaces {
    public static func list() -> [String] {
        let (status, output) = Shell.execute(["ip", "netns", "list"])
        guard status == 0 else { return [] }
        return output.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    public static func exists(_ name: String) -> Bool { list().contains(name) }

    /// Creates a namespace with loopback up and IPv6 off (keeps captures to the test traffic),
    /// and TCP buffers large enough for a long fat link: the default 4 MB tcp_wmem cap limits
    /// one flow to ~8 MB/s at 500 ms RTT.
    public static func create(_ name: String) throws(DelayLinkError) {
        if exists(name) { throw .namespaceExists(name) }
        try Shell.run(["ip", "netns", "add", name])
        do throws(DelayLinkError) {
            try Shell.run(["ip", "-n", name, "link", "set", "lo", "up"])
            try Shell.run([
                "ip", "netns", "exec", name, "sh", "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                    + "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
                    + "echo '4096 131072 268435456' > /proc/sys/net/ipv4/tcp_rmem; "
                    + "echo '4096 131072 268435456' > /proc/sys/net/ipv4/tcp_wmem",
            ])
        } catch {
            delete(name)
            throw error
        }
    }

    /// Deletes namespaces named `<prefix>-<pid>-…` whose process no longer exists (a run that
    /// was killed with SIGKILL cannot clean up after itself). Returns the names removed.
    @discardableResult
    public static func removeStale(prefix: String) -> [String] {
        var removed: [String] = []
        for name in list() where name.hasPrefix(prefix + "-") {
            let rest = name.dropFirst(prefix.count + 1)
            guard let pid = Int32(rest.prefix { $0.isNumber }), pid > 0 else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                delete(name)
                removed.append(name)
            }
        }
        return removed
    }

    /// Best effort; ignores a namespace that is already gone.
    public static func delete(_ name: String) {
        _ = Shell.execute(["ip", "netns", "del", name])
    }

    /// Moves a device (opened in the root namespace) into `namespace` and configures a
    /// point-to-point address towards `peer`.
    public static func attach(
        device: String, to namespace: String, address: String, peer: String, txQueueLength: Int, mtu: Int
    ) throws(DelayLinkError) {
        try Shell.run(["ip", "link", "set", "dev", device, "netns", namespace])
        _ = Shell.execute([
            "ip", "netns", "exec", namespace, "sh", "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/\(device)/disable_ipv6",
        ])
        try Shell.run([
            "ip", "-n", namespace, "link", "set", "dev", device, "txqueuelen", String(txQueueLength), "mtu",
            String(mtu), "up",
        ])
        try Shell.run(["ip", "-n", namespace, "addr", "add", address, "peer", peer, "dev", device])
    }
}
