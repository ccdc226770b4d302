"""Run a Python program in a subprocess with limits: the one place in dg-lsp where code runs.

Benchmarks execute model completions (HumanEval-Infilling tests); the language server never
executes anything. `run_python(program)`:

- writes the program into a fresh temporary directory (removed afterwards) and runs it there
  with this interpreter as `python -s -S -B -P`: no user site, no site-packages, no bytecode
  files, no script directory on `sys.path`. `-I` would do the same but also ignore
  `PYTHONHASHSEED`, which is fixed here (to 0) so that set and dict orders, and so results,
  are reproducible; the environment is built from scratch instead (no proxies, no `PYTHON*`
  variables of ours, HOME and TMPDIR inside the temporary directory);
- closes stdin, discards stdout and keeps the tail of stderr;
- starts it in its own session and kills the whole process group when the wall-clock
  timeout expires;
- sets resource limits (POSIX) in the child before the program runs: address space 1 GiB,
  CPU seconds timeout + 1, no core dumps, 16 MiB per written file, no new processes (where
  the kernel applies it: not to root). They are set by a small bootstrap script the child
  interpreter runs first rather than in a `preexec_fn`, because the evaluator runs sandboxes
  from a thread pool and `preexec_fn` is documented as unsafe in the presence of threads (the
  forked child can deadlock before exec);
- then, still in the bootstrap, blocks the network and process creation by replacing the
  constructors (`socket.socket` and friends, `os.system`, `os.fork`, `os.exec*`,
  `os.posix_spawn`, `subprocess`'s fork) and `os.kill` with versions that raise
  `PermissionError`.

Best effort, not a security boundary: it stops accidents (a completion that loops, eats
memory, opens a connection or runs a command), not a hostile program, which could use ctypes,
or, running as root, raise its own limits again. Run untrusted code from elsewhere in a
container or a VM.

Outcome: "passed" (the program ran to its end), "failed" (an AssertionError escaped: a test
failed), "timeout" (the wall-clock or CPU limit was hit), "error" (anything else: a syntax
error, another exception, `sys.exit`, a signal, a limit such as memory).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ADDRESS_SPACE_BYTES = 1 << 30
FILE_SIZE_BYTES = 16 << 20
STDERR_TAIL_CHARS = 2000
# Exit codes of the bootstrap (Python itself uses 1 for an uncaught exception, 2 for usage).
EXIT_FAILED = 101
EXIT_ERROR = 102

# Runs in the child before the program: limits, then the guard, then the program itself
# (compiled as "program.py", so tracebacks show the program's own line numbers).
_BOOTSTRAP = r'''
import os, sys, traceback

_exit = os._exit
EXIT_FAILED, EXIT_ERROR = {exit_failed}, {exit_error}


def _limits(cpu_s, address_space, file_size):
    try:
        import resource
    except ImportError:  # not POSIX
        return
    def limit(name, soft, hard=None):
        which = getattr(resource, name, None)
        if which is None:
            return
        hard = soft if hard is None else hard
        try:
            _, current_hard = resource.getrlimit(which)
            if current_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, current_hard), min(hard, current_hard)
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass
    limit("RLIMIT_AS", address_space)
    limit("RLIMIT_CPU", cpu_s, cpu_s + 1)  # SIGXCPU at the soft limit, SIGKILL at the hard one
    limit("RLIMIT_CORE", 0)
    limit("RLIMIT_FSIZE", file_size)
    limit("RLIMIT_NPROC", 0)  # the kernel ignores it for root


def _guard():
    def blocked(*args, **kwargs):
        raise PermissionError("blocked by the dg-lsp evaluation sandbox")

    import socket, _socket

    # Subclasses rather than functions, so that modules subclassing socket (ssl) still import.
    class BlockedSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            blocked()

    class BlockedRawSocket(_socket.socket):
        def __init__(self, *args, **kwargs):
            blocked()

    socket.socket = socket.SocketType = BlockedSocket
    _socket.socket = _socket.SocketType = BlockedRawSocket
    for module in (socket, _socket):
        for name in ("socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo"):
            if hasattr(module, name):
                setattr(module, name, blocked)
    for name in ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "kill", "killpg",
                 "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe",
                 "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
        if hasattr(os, name):
            setattr(os, name, blocked)
    try:
        import _posixsubprocess  # what subprocess.Popen forks with
        _posixsubprocess.fork_exec = blocked
    except ImportError:
        pass


def _main(path):
    _limits({cpu_s}, {address_space}, {file_size})
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        code = compile(source, "program.py", "exec")
    except (SyntaxError, ValueError):
        traceback.print_exc()
        return EXIT_ERROR
    _guard()
    namespace = {{"__name__": "__main__", "__file__": "program.py", "__builtins__": __builtins__}}
    try:
        exec(code, namespace)
    except AssertionError:
        traceback.print_exc()
        return EXIT_FAILED
    except BaseException:  # SystemExit too: a program that exits early did not pass its tests
        traceback.print_exc()
        return EXIT_ERROR
    return 0


status = _main(sys.argv[1])
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except Exception:
        pass
_exit(status)
'''


@dataclass
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    stderr_tail: str
    returncode: int | None = None  # None: killed at the timeout
    seconds: float = 0.0


def run_python(program: str, timeout_s: float = 3.0) -> SandboxResult:
    """Run `program` (Python source) in a sandboxed subprocess; see the module docstring."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    cpu_s = math.ceil(timeout_s) + 1
    bootstrap = _BOOTSTRAP.format(exit_failed=EXIT_FAILED, exit_error=EXIT_ERROR, cpu_s=cpu_s,
                                  address_space=ADDRESS_SPACE_BYTES, file_size=FILE_SIZE_BYTES)
    with tempfile.TemporaryDirectory(prefix="dg-lsp-sandbox-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        (root / "bootstrap.py").write_text(bootstrap, encoding="utf-8")
        (root / "program.py").write_text(program, encoding="utf-8", errors="surrogatepass")
        stderr_path = root / "stderr.txt"
        start = time.perf_counter()
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                _interpreter_argv() + ["bootstrap.py", "program.py"],
                cwd=root,
                env=_environment(root),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                close_fds=True,
                start_new_session=os.name == "posix",
            )
            try:
                returncode: int | None = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill(proc)  # before the wait reaps it, so its process group id is still its own
                proc.wait()
                returncode = None
        seconds = time.perf_counter() - start
        tail = _tail(stderr_path)
    return SandboxResult(returncode == 0, _status(returncode), tail, returncode, seconds)


def _interpreter_argv() -> list[str]:
    flags = ["-s", "-S", "-B"] + (["-P"] if sys.version_info >= (3, 11) else [])
    return [sys.executable, *flags]


def _environment(root: Path) -> dict[str, str]:
    env = {
        "PATH": os.defpath,
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUTF8": "1",
        "LC_ALL": "C.UTF-8",
        "HOME": str(root),
        "TMPDIR": str(root),
    }
    if os.name == "nt":  # Windows cannot start a process without these
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "SystemRoot") if k in os.environ})
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _status(returncode: int | None) -> str:
    if returncode is None:
        return "timeout"
    if returncode == 0:
        return "passed"
    if returncode == EXIT_FAILED:
        return "failed"
    cpu_signals = {getattr(signal, "SIGXCPU", None), signal.SIGKILL if os.name == "posix" else None} - {None}
    if returncode < 0 and -returncode in cpu_signals:  # the CPU-time limit
        return "timeout"
    return "error"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * STDERR_TAIL_CHARS))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
