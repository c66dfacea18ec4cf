import NIOCore
import NIOPosix

// NIO's event loops run the Swift concurrency jobs too: no thread hop between the socket
// and the awaiting probe (p99 several times lower; docs/pgprobe.md). Must come first.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

await PGProbeCommand.runSelected(Array(CommandLine.arguments.dropFirst()))
