#!/usr/bin/env python3
"""Start a throw-away `nats-server -js` for a test, and always stop it.

As a module (the torture loop and the benchmarks import it):

    from natsserver import NatsServer, free_port
    with NatsServer() as server:            # a free loopback port, a temporary store directory
        url = server.url("users")           # nats://127.0.0.1:PORT/users
        server.kill9()                      # SIGKILL, as a crash
        server.start()                      # again, on the same port and store directory
    # stopped (SIGTERM, then SIGKILL) and its temporary directory removed

A server is stopped when its `with` block ends, when `stop()` is called, at
interpreter exit (atexit), and when the process gets SIGTERM, SIGINT or SIGHUP
(the servers are stopped, then the signal's default action is taken). It also
runs with PR_SET_PDEATHSIG, so the kernel kills it if the thread that started
it dies, even by SIGKILL: start servers from the main thread (or from a thread
that outlives them). `start()` returns once the server answers a JetStream API
request (`$JS.API.INFO`) on a fresh connection, so JetStream has recovered its
store (a server requiring TLS or credentials, which the probe does not have,
once it answers with its INFO); if the server exits or does not answer within `timeout` seconds it
raises ServerError with the tail of the server's log.

As a command (the golden cases use it):

    python3 natsserver.py run [--port N] [--store DIR] [--arg SERVER-ARG]... [--] COMMAND [ARG...]
        starts a server (with the extra nats-server arguments given by --arg:
        `--arg=--user --arg=u --arg=--pass --arg=p`), runs COMMAND with NATSSERVER_URL (nats://127.0.0.1:PORT),
        NATSSERVER_PORT, NATSSERVER_STORE, NATSSERVER_PID in its environment,
        stops the server and exits with COMMAND's status (2 if the server
        could not start, with the reason on stderr). Prints nothing else.
    python3 natsserver.py free-port
        prints a loopback port nothing listens on (for "unreachable" tests).

A golden case's `cmd` runs itself under a server with one line at its top:

    [[ -n "${NATSSERVER_URL:-}" ]] || exec python3 "$ROOT/Tests/golden/lib/natsserver.py" run -- bash "$0"

The binary is `nats-server` from PATH, or $NATS_SERVER.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository

import atexit  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1

_live = set()              # servers started and not yet closed
_live_lock = threading.Lock()
_handlers_installed = False


class ServerError(Exception):
    pass


def binary():
    return os.environ.get("NATS_SERVER") or "nats-server"


def available():
    """Whether a nats-server binary can be found."""
    b = binary()
    return shutil.which(b) is not None if os.sep not in b else os.access(b, os.X_OK)


def free_port():
    """A loopback TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent():
    # In the child between fork and exec: die when the parent thread dies, and
    # ignore the terminal's SIGINT (the parent stops the server itself).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_all():
    with _live_lock:
        servers = list(_live)
    for s in servers:
        try:
            s.close()
        except Exception:
            pass


def _on_signal(signum, frame):
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # Keep a handler the program set itself; replace only the defaults.
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _on_signal)


def _read_line(sock, buf, deadline):
    while b"\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no answer")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        buf += data
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


def probe(port, timeout=1.0, name=None):
    """Whether a server on PORT (named NAME, if given: not another one that took
    the port) answers `$JS.API.INFO` (JetStream is up), in the client protocol
    directly (no client library needed)."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            buf = b""
            line, buf = _read_line(sock, buf, deadline)
            if not line.startswith(b"INFO "):
                return False
            info = json.loads(line[5:])
            if name is not None and info.get("server_name") != name:
                return False
            if info.get("tls_required") or info.get("auth_required"):
                return True  # the probe has no certificate or credentials: listening must do
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
                         b"SUB _probe.reply 1\r\nPUB $JS.API.INFO _probe.reply 0\r\n\r\n")
            while True:
                line, buf = _read_line(sock, buf, deadline)
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    return False
                elif line.startswith(b"HMSG"):
                    return False  # a 503 no-responders status: JetStream not up (yet)
                elif line.startswith(b"MSG "):
                    size = int(line.split()[-1])
                    while len(buf) < size + 2:  # the payload and its CRLF
                        sock.settimeout(max(0.01, deadline - time.monotonic()))
                        data = sock.recv(65536)
                        if not data:
                            return False
                        buf += data
                    return b'"error"' not in buf[:size]
    except (OSError, ValueError):
        return False


class NatsServer:
    """One nats-server with JetStream on 127.0.0.1, its port and store directory
    kept across kill9() and start() (for crash tests)."""

    def __init__(self, port=None, store_dir=None, timeout=10.0, log=None, extra_args=()):
        self._port_chosen = port is None
        self.port = port or free_port()
        self._own_dir = store_dir is None
        self.base = tempfile.mkdtemp(prefix="logkit-nats.") if self._own_dir else None
        self.store_dir = store_dir or os.path.join(self.base, "jetstream")
        self.log_path = log or os.path.join(self.base or self.store_dir, "nats-server.log")
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0
        self.name = "logkit-test-%d-%s" % (os.getpid(), os.urandom(4).hex())

    # -- life cycle ---------------------------------------------------------

    def start(self):
        """Starts the server (again) on the same port and store directory and
        waits until JetStream answers."""
        if self.running():
            return self
        _install_handlers()
        os.makedirs(self.store_dir, exist_ok=True)
        cmd = [binary(), "-js", "-a", HOST, "-p", str(self.port), "-sd", self.store_dir,
               "-n", self.name, *self.extra_args]
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent, close_fds=True)
        except OSError as e:
            raise ServerError("cannot run %s: %s" % (cmd[0], e))
        finally:
            log.close()
        with _live_lock:
            _live.add(self)
        self.starts += 1
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                status = self.proc.returncode
                if self._port_chosen and self.starts == 1 and "address already in use" in self.log_tail():
                    # Another process took the free port between free_port() and the bind: another one.
                    self.port = free_port()
                    self.starts = 0
                    return self.start()
                raise ServerError("nats-server on port %d exited (status %s) while starting:\n%s" % (
                    self.port, status, self.log_tail()))
            if probe(self.port, timeout=min(1.0, max(0.05, deadline - time.monotonic())), name=self.name):
                return self
            if time.monotonic() > deadline:
                self.kill9()
                raise ServerError("nats-server on port %d did not answer within %.0f s:\n%s" % (
                    self.port, self.timeout, self.log_tail()))
            time.sleep(0.01)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL, as a crash; the store directory stays for start()."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()

    def stop(self, grace=5.0):
        """SIGTERM (a clean shutdown), SIGKILL after `grace` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except OSError:
                pass

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        """Stops the server and removes its temporary directory (if it made one)."""
        self.stop()
        self._forget()
        if self._own_dir and self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def _forget(self):
        with _live_lock:
            _live.discard(self)

    # -- use ----------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return "nats://%s:%d" % (HOST, self.port)

    def url(self, bucket=""):
        return "%s/%s" % (self.address, bucket) if bucket else self.address

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()
        return False


def _main(argv):
    import argparse
    parser = argparse.ArgumentParser(prog="natsserver.py", description="a throw-away nats-server -js for tests")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run COMMAND with a server started for it")
    run.add_argument("--port", type=int)
    run.add_argument("--store", help="store directory (default: a temporary one, removed afterwards)")
    run.add_argument("--arg", action="append", default=[], help="an extra nats-server argument (repeat it)")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("free-port", help="print a loopback port nothing listens on")
    args = parser.parse_args(argv)
    if args.command == "free-port":
        print(free_port())
        return 0
    cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not cmd:
        parser.error("run: no COMMAND")
    if not available():
        print("natsserver.py: %s not found (install nats-server)" % binary(), file=sys.stderr)
        return 2
    try:
        server = NatsServer(port=args.port, store_dir=args.store, extra_args=args.arg).start()
    except ServerError as e:
        print("natsserver.py: %s" % e, file=sys.stderr)
        return 2
    try:
        env = dict(os.environ, NATSSERVER_URL=server.url(), NATSSERVER_PORT=str(server.port),
                   NATSSERVER_STORE=server.store_dir, NATSSERVER_PID=str(server.pid))
        # The command's own signals are its business; ours stop the server first.
        child = subprocess.Popen(cmd, env=env)
        while True:
            try:
                status = child.wait()
                return 128 - status if status < 0 else status
            except KeyboardInterrupt:
                continue
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
