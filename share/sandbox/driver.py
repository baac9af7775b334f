# driver.py -- the code_interpreter driver, run by assistd inside the sandbox
# (src/sandbox/sandbox.c) as: /usr/bin/python3 -I -u /driver.py CPU_SECONDS
#
# One driver process is one stateful notebook-like session: every code cell
# runs in the same globals dict, so variables survive from one execution to
# the next.
#
# File descriptors set up by assistd:
#   0      /dev/null
#   1, 2   one pipe to assistd: everything the cell prints (stdout, stderr,
#          tracebacks, the trailing expression's value) in the order written.
#          assistd reads it with a bound and truncates.
#   3      a Unix socket to assistd carrying framed messages both ways.
#
# Frames (both directions): one ASCII letter, a space, the payload length in
# decimal, a newline, then exactly that many payload bytes.
#   assistd -> driver   C  code of one cell (UTF-8)
#   driver -> assistd   R  ready, payload "assistd-driver 1" (once, at start)
#                       I  one PNG image (an open matplotlib figure)
#                       D  end of the cell; payload is the status word:
#                          ok, error, memory, timeout (interrupted by SIGINT), cpu
# The cell's code can write anything to these descriptors, so assistd treats
# every byte it receives as untrusted and validates it.
import ast
import io
import os
import resource
import signal
import sys
import traceback

CPU_SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 120
MAX_IMAGE = 8 * 1024 * 1024
MAX_IMAGES = 16

# Keep the protocol socket away from fd 3, where cell code would look first,
# and make it non-inheritable so subprocesses never get it.
CTL = os.dup(3)
os.close(3)
os.set_inheritable(CTL, False)

# A private copy of the output pipe, put back on fds 1 and 2 after every cell
# so that a cell that closes or redirects them does not silence the session.
OUT = os.dup(1)
os.set_inheritable(OUT, False)

sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                              errors="backslashreplace", write_through=True)
sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                              errors="backslashreplace", write_through=True)


def send(kind, payload):
    data = b"%s %d\n" % (kind, len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(CTL, view)
        view = view[n:]


class _Reader:
    def __init__(self):
        self.buf = b""

    def _fill(self):
        chunk = os.read(CTL, 65536)
        if not chunk:
            sys.exit(0)  # assistd went away
        self.buf += chunk

    def frame(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 64:
                sys.exit(2)
            self._fill()
        head, self.buf = self.buf.split(b"\n", 1)
        kind, length = head.split(b" ", 1)
        length = int(length)
        while len(self.buf) < length:
            self._fill()
        payload, self.buf = self.buf[:length], self.buf[length:]
        return kind, payload


class CpuLimitExceeded(Exception):
    """The cell used more CPU time than the sandbox allows per execution."""


_in_cell = False
_interrupted = False


def _on_sigint(signum, frame):
    global _interrupted
    if _in_cell:
        _interrupted = True
        raise KeyboardInterrupt


def _on_sigxcpu(signum, frame):
    if _in_cell:
        raise CpuLimitExceeded("CPU time limit of %d seconds exceeded" % CPU_SECONDS)


signal.signal(signal.SIGINT, _on_sigint)
signal.signal(signal.SIGXCPU, _on_sigxcpu)


def _arm_cpu_limit():
    # The hard limit (set by assistd) bounds the interpreter's whole life; the
    # soft limit gives this cell CPU_SECONDS more than used so far.
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    want = int(ru.ru_utime + ru.ru_stime) + CPU_SECONDS
    if hard != resource.RLIM_INFINITY and want > hard:
        want = hard
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
    except (ValueError, OSError):
        pass


def _restore_output():
    try:
        os.dup2(OUT, 1)
        os.dup2(OUT, 2)
    except OSError:
        pass  # OUT itself was closed: assistd sees the pipe end and restarts us
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            keep = not sys.__dict__[name].closed and sys.__dict__[name].fileno() == fd
        except Exception:
            keep = False
        if not keep:
            setattr(sys, name, io.TextIOWrapper(io.FileIO(fd, "w", closefd=False),
                                                encoding="utf-8", errors="backslashreplace",
                                                write_through=True))


def _print_exception(exc):
    _restore_output()  # the cell may have closed fds 1 and 2
    tb = exc.__traceback__
    # Drop the driver's own frames so the traceback starts in the cell.
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    sys.stderr.write(text)


USER_GLOBALS = {"__name__": "__main__", "__builtins__": __builtins__}


def _run(code):
    tree = ast.parse(code, filename="<cell>", mode="exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    if tree.body:
        exec(compile(tree, "<cell>", "exec"), USER_GLOBALS)
    if last is not None:
        value = eval(compile(last, "<cell>", "eval"), USER_GLOBALS)
        if value is not None:
            USER_GLOBALS["_"] = value
            sys.stdout.write(repr(value) + "\n")


def _figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        nums = plt.get_fignums()
        for num in nums[:MAX_IMAGES]:
            out = io.BytesIO()
            plt.figure(num).savefig(out, format="png")
            data = out.getvalue()
            if len(data) <= MAX_IMAGE:
                send(b"I", data)
            else:
                sys.stderr.write("[figure %d too large to return]\n" % num)
        if len(nums) > MAX_IMAGES:
            sys.stderr.write("[only the first %d figures are returned]\n" % MAX_IMAGES)
    except Exception as exc:  # a broken figure must not end the session
        sys.stderr.write("[could not save figures: %s]\n" % exc)
    finally:
        try:
            plt.close("all")
        except Exception:
            pass


def _cell(code):
    global _in_cell, _interrupted
    status = "ok"
    _interrupted = False
    _arm_cpu_limit()
    _in_cell = True
    try:
        _run(code)
    except KeyboardInterrupt as exc:
        status = "timeout" if _interrupted else "error"
        _in_cell = False
        _print_exception(exc)
    except CpuLimitExceeded as exc:
        status = "cpu"
        _in_cell = False
        _print_exception(exc)
    except MemoryError as exc:
        status = "memory"
        _in_cell = False
        _print_exception(exc)
    except BaseException as exc:  # SystemExit included: the session lives on
        status = "error"
        _in_cell = False
        _print_exception(exc)
    finally:
        _in_cell = False
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    _restore_output()
    _figures()
    send(b"D", status.encode())


def _preload():
    # Import the heavy libraries once at start so the first cell is fast.
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in ("numpy", "pandas", "matplotlib", "matplotlib.pyplot"):
        try:
            __import__(name)
        except Exception:
            pass


def main():
    _preload()
    reader = _Reader()
    send(b"R", b"assistd-driver 1")
    while True:
        kind, payload = reader.frame()
        if kind != b"C":
            sys.exit(2)
        _cell(payload.decode("utf-8", "replace"))


main()
