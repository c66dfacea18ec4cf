import DelayLink
import Foundation

/// How the two lab namespaces are joined.
public enum LinkKind: String, Sendable, CaseIterable {
    /// vtp-netem's userspace forwarder on a TUN pair (works on any kernel with TUN).
    case userspace
    /// A veth pair with the kernel's `tc netem` on both ends (needs sch_netem).
    case netem
    /// netem when the kernel has it, otherwise userspace.
    case auto
}

/// The link between the "sender" and "receiver" namespaces of one lab case.
protocol LabLink: AnyObject {
    var senderNamespace: String { get }
    var receiverNamespace: String { get }
    /// The receiver's side of the link (for tcpdump).
    var receiverDevice: String { get }
    /// The link's own release error p50/p99 in seconds, when it measures it.
    func stop() throws(LabError) -> (p50: Double, p99: Double)?
}

final class UserspaceLabLink: LabLink {
    let running: RunningLink
    var senderNamespace: String { running.link.endA.namespace }
    var receiverNamespace: String { running.link.endB.namespace }
    var receiverDevice: String { running.link.b.name }

    init(tag: String, delayMs: Double, lifetimeSeconds: Double) throws(LabError) {
        let delay = DirectionProfile(delayNanos: Int64((delayMs * 1e6).rounded()))
        do {
            running = try RunningLink(
                endA: LinkEnd(namespace: "\(tag)-sender", address: LabRunner.senderAddress),
                endB: LinkEnd(namespace: "\(tag)-receiver", address: LabRunner.receiverAddress),
                settings: ForwarderSettings(
                    aToB: delay, bToA: delay, durationNanos: Int64(lifetimeSeconds * 1e9)))
        } catch { throw .setupFailed("\(error)") }
    }

    func stop() throws(LabError) -> (p50: Double, p99: Double)? {
        let report = running.stop()
        if let error = running.error { throw .processFailed("the delay link stopped: \(error)") }
        guard let report else { return nil }
        return (
            max(report.a_to_b.release_error_s.p50, report.b_to_a.release_error_s.p50),
            max(report.a_to_b.release_error_s.p99, report.b_to_a.release_error_s.p99)
        )
    }
}

/// A veth pair between the namespaces with `tc netem delay` on each end (each end delays
/// what it sends, as on two VMs with netem on both).
final class NetemLabLink: LabLink {
    let senderNamespace: String
    let receiverNamespace: String
    let receiverDevice = "lab0"
    private var removed = false

    /// Whether `tc netem` works on this kernel (tried on loopback in a scratch namespace).
    static func kernelHasNetem() -> Bool {
        let scratch = "vtpprobe-\(getpid())"
        guard Shell.execute(["ip", "netns", "add", scratch]).status == 0 else { return false }
        defer { NetworkNamespaces.delete(scratch) }
        return Shell.execute(["tc", "-n", scratch, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]).status == 0
    }

    init(tag: String, delayMs: Double) throws(LabError) {
        senderNamespace = "\(tag)-sender"
        receiverNamespace = "\(tag)-receiver"
        do throws(DelayLinkError) {
            try NetworkNamespaces.create(senderNamespace)
            try NetworkNamespaces.create(receiverNamespace)
            try Shell.run([
                "ip", "link", "add", "lab0", "netns", senderNamespace, "type", "veth", "peer", "name", "lab0", "netns",
                receiverNamespace,
            ])
            for (namespace, address, peer) in [
                (senderNamespace, LabRunner.senderAddress, LabRunner.receiverAddress),
                (receiverNamespace, LabRunner.receiverAddress, LabRunner.senderAddress),
            ] {
                try Shell.run(["ip", "-n", namespace, "addr", "add", address, "peer", peer, "dev", "lab0"])
                try Shell.run(["ip", "-n", namespace, "link", "set", "dev", "lab0", "up"])
                try Shell.run([
                    "tc", "-n", namespace, "qdisc", "add", "dev", "lab0", "root", "netem", "delay",
                    "\(delayMs)ms", "limit", "100000",
                ])
            }
        } catch {
            remove()
            throw .setupFailed("tc netem on a veth pair: \(error)")
        }
    }

    private func remove() {
        guard !removed else { return }
        removed = true
        NetworkNamespaces.delete(senderNamespace)
        NetworkNamespaces.delete(receiverNamespace)
    }

    func stop() throws(LabError) -> (p50: Double, p99: Double)? {
        remove()
        return nil
    }
}
