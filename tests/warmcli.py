"""`python -m console.cli …` for the tests, forked from a warm interpreter instead of started cold.

About a hundred tests run the CLI as a process of its own (serve, export, stats, replay, …), and each start paid
~0.9 s of CPU importing the same third-party libraries (aiohttp, pydantic, textual, sqlite-utils, google-auth,
genai-prices, numpy via sqlite-utils, …) before the command ran: a quarter of the suite's CPU. Here one process
per test worker (the "zygote") imports exactly the third-party modules that `import console.cli` imports, once,
and forks a child per command.

The child is still a new process of the command's own: its pid, argv, environment, working directory, stdio and
exit status (a signal included) are the command's; it imports the project's own modules (`console`, `proxy`) and
runs `console.cli` as `__main__` itself, after the fork, so nothing of ours is shared between commands or read
under another environment; and it ends through the interpreter's normal exit (atexit, thread joins, flushes).
Whatever the zygote cannot reproduce runs the real interpreter instead (`_warm_ok`): another program or module,
interpreter settings that differ (PYTHON*, locale, TZ, the libraries' import-time switches), a terminal,
`preexec_fn` and friends.

`run`, `Popen` and `create_subprocess_exec` are drop-in for `subprocess.run`, `subprocess.Popen` and
`asyncio.create_subprocess_exec`: the usual objects (a `CompletedProcess`, a `Popen`, an asyncio `Process`) whose
start and exit go through the zygote (`_WarmPopen`, `_WarmTransport`).
"""

from __future__ import annotations

import array
import asyncio
import atexit
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from asyncio import base_subprocess, streams
from asyncio import subprocess as aio_subprocess
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "console.cli"

BASE_ENV = dict(os.environ)
"""the environment as the suite started, before any test changed it: the zygote's own"""

_SETTINGS_PREFIXES = (
    "PYTHON",
    "LC_",
    "TEXTUAL",
    "AIOHTTP_",
    "PROMETHEUS_",
    "PYDANTIC_",
    "GOOGLE_API_",
    "CLOUDSDK_",
)
_SETTINGS_NAMES = {"LANG", "TZ", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "ESCDELAY"}
_SETTINGS_SUFFIXES = ("_NO_EXTENSIONS", "SSL_CERT_FILE", "SSL_CERT_DIR")
"""variables read as the interpreter starts or as the preloaded libraries are imported (found by recording what
the imports read): a command whose values differ from the zygote's would not start the same, so it runs cold"""


def _settings(env: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in env.items()
        if k.startswith(_SETTINGS_PREFIXES) or k in _SETTINGS_NAMES or k.endswith(_SETTINGS_SUFFIXES)
    }


def _zygote_env() -> dict[str, str]:
    env = {k: v for k, v in BASE_ENV.items() if not k.startswith(("GEMINI_", "GCP_", "GATEWATCH_"))}
    env["PYTHONPATH"] = ROOT
    return env


def _user_site(home: str | None) -> bool:
    """Whether HOME holds a user site-packages, which the interpreter would put on sys.path as it starts."""
    if not home:
        return False
    v = sys.version_info
    return os.path.isdir(os.path.join(home, ".local", "lib", f"python{v[0]}.{v[1]}", "site-packages"))


def _umask() -> int:
    """This process's umask, read without setting it (os.umask sets it, for a moment, for every thread)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise RuntimeError("no Umask in /proc/self/status")


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


# -- the zygote ---------------------------------------------------------------------------------------------
def _ours(module: str) -> bool:
    """A module the command imports itself, after the fork: the project's, and the command's own."""
    return module.split(".")[0] in ("console", "proxy") or module == MODULE or module.startswith(MODULE + ".")


def _preload() -> None:
    """Import what `import console.cli` imports, leaving out our own modules: learnt in a throwaway child, so the
    zygote never imports (and never keeps) a module of ours."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the throwaway: import, report, vanish
        os.close(r)
        try:
            before = set(sys.modules)
            __import__(MODULE)
            names = [m for m in sys.modules if m not in before and not _ours(m)]
            os.write(w, json.dumps(names).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        names = json.loads(f.read() or b"[]")
    os.waitpid(pid, 0)
    import importlib

    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:  # a lazy alias or a platform variant: the child imports what it needs anyway
            pass
    import gc

    gc.collect()
    gc.freeze()  # kept out of the children's collections, so they do not copy every page of it as they run


def _precompile() -> None:
    """Compile our own modules once, here, for every child to import without compiling them again (what their
    __pycache__ would spare, where PYTHONDONTWRITEBYTECODE leaves none): the child still imports and executes
    them itself, from code objects the same as `compile` would give it there; a file changed since is compiled
    afresh."""
    from importlib.machinery import SourceFileLoader

    codes: dict[str, tuple[tuple[int, int], Any]] = {}
    for package in ("proxy", "console"):
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        source = f.read()
                    st = os.stat(path)
                    codes[path] = (
                        (st.st_mtime_ns, st.st_size),
                        compile(source, path, "exec", dont_inherit=True),
                    )
    compile_it = SourceFileLoader.get_code

    def get_code(self: SourceFileLoader, fullname: str) -> Any:
        path = self.get_filename(fullname)
        known = codes.get(path)
        if known is not None:
            st = os.stat(path)
            if known[0] == (st.st_mtime_ns, st.st_size):
                return known[1]
        return compile_it(self, fullname)

    SourceFileLoader.get_code = get_code  # type: ignore[method-assign]


def _recv(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    msg, anc, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(8 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


def zygote(control_fd: int) -> Callable[[], None]:
    """The zygote's loop: serve fork requests on `control_fd` until the test worker goes away. Returns, in a
    forked child only, the command to run (the caller runs it at the top level, so the child exits as a
    `python -m` process does)."""
    _preload()
    _precompile()
    control = socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(control, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    while True:
        for key, _ in sel.select():
            if key.fileobj is control:
                msg, fds = _recv(control)
                if not msg:  # the worker is gone: so are the commands it started
                    for pid in children:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    os._exit(0)
                request = json.loads(msg)
                stdio, reply = fds[:3], socket.socket(fileno=fds[3])
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (wake_r, wake_w, control.detach(), reply.detach()):
                        os.close(fd)
                    for s in children.values():
                        s.close()
                    return _child(request, stdio)
                for fd in stdio:
                    os.close(fd)
                reply.send(b"%d" % pid)
                children[pid] = reply
            else:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                while children:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    reply = children.pop(pid)
                    try:
                        reply.send(b"%d" % status)
                    except OSError:  # nobody waits for it any more
                        pass
                    reply.close()


def _child(request: dict[str, Any], stdio: list[int]) -> Callable[[], None]:
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)
    for fd in set(stdio) - {0, 1, 2}:
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    sys.path[0] = os.getcwd()  # what `-m` puts first
    for name in [m for m in sys.modules if m == "tests" or m.startswith("tests.")]:
        del sys.modules[name]  # the zygote's own code: a command never sees it
    sys.argv = ["-m", *request["args"]]
    sys.orig_argv = [sys.executable, "-m", MODULE, *request["args"]]

    def run() -> None:
        import runpy

        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)

    return run


# -- the test worker's side -----------------------------------------------------------------------------------
class _Zygote:
    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from tests.warmcli import zygote; zygote({theirs.fileno()})()"],
            env=_zygote_env(),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self.control = mine
        self.lock = threading.Lock()

    def fork(
        self, args: list[str], env: dict[str, str], cwd: str, stdio: list[int]
    ) -> tuple[int, socket.socket]:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"args": args, "env": env, "cwd": cwd, "umask": _umask()}).encode()
        try:
            with self.lock:
                socket.send_fds(self.control, [request], [*stdio, theirs.fileno()])
        finally:
            theirs.close()
        answer = mine.recv(64)
        if not answer:
            self.log.seek(0)
            raise RuntimeError(
                f"the warm CLI process is gone: {self.log.read().decode(errors='replace')[-2000:]}"
            )
        return int(answer), mine

    def close(self) -> None:
        self.control.close()  # the zygote sees the end of its control socket and leaves
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _the_zygote() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            _zygote = _Zygote()
            atexit.register(_zygote.close)
        return _zygote


def _warm_ok(args: Any, kw: dict[str, Any]) -> bool:
    """Whether the zygote can start this command as the real interpreter would."""
    if not sys.platform.startswith(
        "linux"
    ):  # SOCK_SEQPACKET pairs, /proc: elsewhere every command starts cold
        return False
    if isinstance(args, (str, bytes, os.PathLike)):
        return False
    args = [os.fspath(a) for a in args]
    if args[:3] != [sys.executable, "-m", MODULE]:
        return False
    unsupported = (
        "preexec_fn",
        "pass_fds",
        "start_new_session",
        "process_group",
        "user",
        "group",
        "extra_groups",
    )
    if (
        kw.get("shell")
        or kw.get("executable")
        or kw.get("close_fds") is False
        or any(kw.get(k) for k in unsupported)
    ):
        return False
    env = kw.get("env")
    env = dict(os.environ if env is None else env)
    if (
        _settings(env) != _settings(_zygote_env())
        or _user_site(env.get("HOME"))
        or _user_site(BASE_ENV.get("HOME"))
    ):
        return False
    cwd = os.fspath(kw.get("cwd") or os.getcwd())
    if not os.path.isdir(cwd):  # the real start's error (FileNotFoundError) is the real one's to raise
        return False
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        if kw.get(name) is None and _is_tty(fd):  # a terminal decides buffering as the interpreter starts
            return False
    return True


class _WarmPopen(subprocess.Popen):
    """A `Popen` whose child the zygote forks: pipes, `communicate`, signals and timeouts are `Popen`'s own;
    starting and reaping go through the zygote (the child is the zygote's, so `waitpid` here cannot see it)."""

    on_exit: Callable[[int], None] | None = None
    """called once with the exit code, by whichever of poll, wait or the asyncio transport learns it first"""

    def _execute_child(  # type: ignore[override]
        self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo, creationflags, shell,
        p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, *rest,
    ) -> None:  # fmt: skip
        self.args = args = [os.fspath(a) for a in args]
        stdio = [
            p2cread if p2cread != -1 else 0,
            c2pwrite if c2pwrite != -1 else 1,
            errwrite if errwrite != -1 else 2,
        ]
        try:
            env = dict(os.environ if env is None else env)
            self.pid, self._reply = _the_zygote().fork(args[3:], env, os.fspath(cwd or os.getcwd()), stdio)
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _status(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        self._reply.settimeout(timeout)
        try:
            answer = self._reply.recv(64)
        except (TimeoutError, BlockingIOError):
            return None
        if not answer:
            raise RuntimeError("the warm CLI process went away before its command ended")
        self.returncode = code = os.waitstatus_to_exitcode(int(answer))
        if self.on_exit is not None:
            self.on_exit(code)
        self._reply.close()
        return code

    def _internal_poll(self, _deadstate=None, **_kw):  # type: ignore[override]
        if self.returncode is None:
            try:
                self._status(0)
            except OSError:
                if _deadstate is not None:
                    self.returncode = _deadstate
        return self.returncode

    def _wait(self, timeout):  # type: ignore[override]
        if self._status(timeout) is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    @property
    def reply_fd(self) -> int:
        return self._reply.fileno()


def Popen(args: Any, **kw: Any) -> subprocess.Popen:
    """`subprocess.Popen`, forked from the zygote when `_warm_ok`."""
    return (_WarmPopen if _warm_ok(args, kw) else subprocess.Popen)(args, **kw)


def run(args: Any, *, input: Any = None, capture_output: bool = False, timeout: float | None = None,
        check: bool = False, **kw: Any) -> subprocess.CompletedProcess:  # fmt: skip
    """`subprocess.run`, forked from the zygote when `_warm_ok`."""
    if not _warm_ok(args, kw):
        return subprocess.run(
            args, input=input, capture_output=capture_output, timeout=timeout, check=check, **kw
        )
    if input is not None:
        kw["stdin"] = subprocess.PIPE
    if capture_output:
        kw["stdout"] = kw["stderr"] = subprocess.PIPE
    with _WarmPopen(args, **kw) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        except BaseException:
            proc.kill()
            raise
        code = proc.poll()
        if check and code:
            raise subprocess.CalledProcessError(code, proc.args, output=out, stderr=err)
    return subprocess.CompletedProcess(proc.args, code, out, err)


class _WarmTransport(base_subprocess.BaseSubprocessTransport):
    """asyncio's own subprocess transport, whose child the zygote forks and whose exit the zygote reports (in
    place of asyncio's child watcher, which waits only for the loop process's own children)."""

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):  # type: ignore[override]
        self._proc = _WarmPopen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr, universal_newlines=False,
            bufsize=bufsize, **kwargs,
        )  # fmt: skip
        self._proc.on_exit = self._exited
        self._loop.add_reader(self._proc.reply_fd, self._proc.poll)

    def _exited(self, code: int) -> None:
        self._loop.remove_reader(self._proc.reply_fd)
        self._process_exited(code)


async def create_subprocess_exec(program: Any, *args: Any, stdin=None, stdout=None, stderr=None,
                                 limit: int = streams._DEFAULT_LIMIT, **kw: Any) -> aio_subprocess.Process:  # fmt: skip
    """`asyncio.create_subprocess_exec`, forked from the zygote when `_warm_ok`."""
    argv = [program, *args]
    if not _warm_ok(argv, {"stdin": stdin, "stdout": stdout, "stderr": stderr, **kw}):
        return await asyncio.create_subprocess_exec(
            program, *args, stdin=stdin, stdout=stdout, stderr=stderr, limit=limit, **kw
        )
    loop = asyncio.get_running_loop()
    protocol = aio_subprocess.SubprocessStreamProtocol(limit=limit, loop=loop)
    waiter = loop.create_future()
    transport = _WarmTransport(loop, protocol, argv, False, stdin, stdout, stderr, 0, waiter=waiter, **kw)
    try:
        await waiter
    except BaseException:
        transport.close()
        await transport._wait()
        raise
    return aio_subprocess.Process(transport, protocol, loop)
