/// Where one end of the link lives.
public struct LinkEnd: Sendable, Equatable {
    public var namespace: String
    public var address: String
    public init(namespace: String, address: String) {
        self.namespace = namespace
        self.address = address
    }
}

/// Two TUN devices opened in the root namespace, then moved one into each namespace with
/// point-to-point addresses. Closing the devices (tearDown or process exit) removes them.
public final class EmulatedLink {
    public let a: TunDevice
    public let b: TunDevice
    public let endA: LinkEnd
    public let endB: LinkEnd
    /// Namespaces this link created and so deletes on tear-down.
    public private(set) var ownedNamespaces: [String] = []

    public init(
        endA: LinkEnd, endB: LinkEnd, createNamespaces: Bool, vnetHeader: Bool = true, txQueueLength: Int = 5000,
        mtu: Int = 1500
    ) throws(DelayLinkError) {
        guard endA.namespace != endB.namespace else {
            throw .invalidSetting("the two ends need different namespaces (both are \(endA.namespace))")
        }
        self.endA = endA
        self.endB = endB
        var created: [String] = []
        do throws(DelayLinkError) {
            for end in [endA, endB] {
                if createNamespaces {
                    try NetworkNamespaces.create(end.namespace)
                    created.append(end.namespace)
                } else if !NetworkNamespaces.exists(end.namespace) {
                    throw .invalidSetting(
                        "network namespace \(end.namespace) does not exist (create it with ip netns add, or pass --create-namespaces)")
                }
            }
            // "%d" lets the kernel pick a free name in the root namespace.
            a = try TunDevice(requestedName: "vtpnet%d", vnetHeader: vnetHeader)
            b = try TunDevice(requestedName: "vtpnet%d", vnetHeader: vnetHeader)
            try NetworkNamespaces.attach(
                device: a.name, to: endA.namespace, address: endA.address, peer: endB.address,
                txQueueLength: txQueueLength, mtu: mtu)
            try NetworkNamespaces.attach(
                device: b.name, to: endB.namespace, address: endB.address, peer: endA.address,
                txQueueLength: txQueueLength, mtu: mtu)
        } catch {
            for name in created { NetworkNamespaces.delete(name) }
            throw error
        }
        ownedNamespaces = created
    }

    /// Deletes the namespaces this link created (the devices go when the fds close).
    public func tearDown() {
        for name in ownedNamespaces { NetworkNamespaces.delete(name) }
        ownedNamespaces = []
    }
}
