// Sleeping until a file changes: inotify on a file and on its directory, so a
// follower uses no CPU while nothing is appended, and wakes within a
// scheduler tick of a write. Standard output is watched too, so a follower
// whose reader went away notices it while idle, not only at its next write.

import Glibc

public final class FileWatch {
    private let events: FileDescriptor
    private let path: String

    /// What woke the watcher.
    public enum Wake: Sendable {
        /// The file (or its directory entry) changed, or nothing did before a timeout.
        case changed
        /// Standard output was closed by its reader.
        case outputClosed
    }

    /// Watches `path` for writes and its directory for a file renamed or
    /// created over the name.
    public init(path: String) throws(SystemError) {
        self.path = path
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "inotify_init1", path: path) }
        events = FileDescriptor(raw: fd, path: path)
        guard inotify_add_watch(fd, path, UInt32(IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) >= 0,
              inotify_add_watch(fd, FileSystem.directory(of: path), UInt32(IN_CREATE | IN_MOVED_TO | IN_DELETE)) >= 0
        else {
            let error = SystemError(errno: errno, operation: "inotify_add_watch", path: path)
            events.close()
            throw error
        }
    }

    /// Watches a directory for files created or renamed into it.
    public init(directory: String) throws(SystemError) {
        path = directory
        let fd = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard fd >= 0 else { throw SystemError(errno: errno, operation: "inotify_init1", path: directory) }
        events = FileDescriptor(raw: fd, path: directory)
        guard inotify_add_watch(fd, directory, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0 else {
            let error = SystemError(errno: errno, operation: "inotify_add_watch", path: directory)
            events.close()
            throw error
        }
    }

    deinit { events.close() }

    /// Sleeps until the file changes, output closes, or `timeoutMilliseconds`
    /// pass (-1: no timeout). Pending events are drained: one wake covers them.
    public func wait(timeoutMilliseconds: Int32 = -1) throws(SystemError) -> Wake {
        var fds = [pollfd(fd: events.raw, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: FileDescriptor.standardOutput.raw, events: 0, revents: 0)]
        let ready = retryingInterrupts { poll(&fds, nfds_t(fds.count), timeoutMilliseconds) }
        guard ready >= 0 else { throw SystemError(errno: errno, operation: "poll", path: path) }
        if fds[1].revents & Int16(POLLERR | POLLHUP) != 0 { return .outputClosed }
        var drain = [UInt8](repeating: 0, count: 4096)
        while drain.withUnsafeMutableBytes({ Glibc.read(events.raw, $0.baseAddress, $0.count) }) > 0 {}
        return .changed
    }
}
