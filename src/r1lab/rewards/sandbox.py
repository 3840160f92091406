"""Run untrusted, model-written Python with hard limits, for the code rewards.

    from r1lab.rewards.sandbox import Limits, run_python
    result = run_python("print(input()[::-1])", stdin="abc\\n", limits=Limits(wall_time=2))
    result.stdout, result.returncode, result.timed_out, result.isolation

Every run gets a fresh temporary directory (its cwd, HOME and TMPDIR), a new session, rlimits
(CPU, address space, processes, file size, open files, no core dumps), a scrubbed environment, an
isolated interpreter (`python -I -S`: no site-packages, no user paths, no PYTHON* variables), a
wall-clock limit enforced by this process, and a cap on the output it may print (killed on
overflow). Where the machine allows it, it also runs as PID 1's child in fresh network, PID, IPC
and mount namespaces (no network at all, not even loopback; every process it starts dies with it;
SysV IPC private to the run; private tmpfs over the world-writable directories), under a seccomp
filter (no namespaces, mounts, ptrace, keyrings, bpf, io_uring, SysV IPC or non-AF_UNIX sockets),
and, when we are root, as a throwaway uid that owns nothing, cannot gain privileges, has its own
process count for RLIMIT_NPROC (root ignores that limit), and is swept (`kill(-1)` as that uid)
when the run ends. `SandboxResult.isolation` names what was applied; a layer that cannot be
applied is warned about once, and `Limits(require="full")` or R1LAB_SANDBOX_REQUIRE=full make it
an error. docs/sandbox.md says exactly what each layer does and does not guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

INIT = Path(__file__).with_name("_sandbox_init.py")
# Sandbox uids are UID_BASE + 1 + pid * 64 + n: unique among concurrent runs, far above any real
# account, and fresh, so RLIMIT_NPROC counts only this run's processes. UID_BASE itself is the
# uid the probe uses.
UID_BASE = 100_000_000
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_SBIN_PATH = SAFE_PATH + ":/usr/local/sbin:/usr/sbin:/sbin"
NS_FLAGS = ("--net", "--pid", "--ipc", "--mount", "--fork", "--kill-child", "--mount-proc")
FULL = ("setuid", "netns", "pidns", "ipcns", "mountns", "seccomp")
"""The layers `require="full"` (or R1LAB_SANDBOX_REQUIRE=full) insists on."""
REQUIRE_ENV = "R1LAB_SANDBOX_REQUIRE"

# System calls the seccomp layer denies with EPERM: kernel attack surface, namespaces, mounts,
# and host-wide state no scored program needs (docs/sandbox.md lists why each is there).
DENIED_SYSCALLS = (
    # namespaces and mounts: a user namespace would let the program mount an uncapped tmpfs
    "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes' memory, kernel keyrings, eBPF, perf, page-fault handling, io_uring
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "keyctl",
    "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "personality",
    # the machine itself (all need privileges the throwaway uid lacks: defence in depth)
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "syslog", "quotactl", "open_by_handle_at",
    "name_to_handle_at", "lookup_dcookie", "fanotify_init", "iopl", "ioperm", "uselib", "vhangup",
    # memory outside RLIMIT_AS: a memfd's pages are the host's until every fd to it is closed
    "memfd_create", "memfd_secret",
    # SysV IPC: host-wide without an IPC namespace, and it outlives the run
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget",
    "semop", "semtimedop", "semctl",
)  # fmt: skip
# Namespace flags of clone/unshare (CLONE_NEWNS, CLONE_NEWCGROUP, UTS, IPC, USER, PID, NET, TIME).
CLONE_NS_FLAGS = (0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000)
CLONE_NS_FLAGS += (0x40000000, 0x80)


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. Every limit is a floor that holds without namespaces."""

    wall_time: float = 5.0
    """Seconds of wall-clock time before everything the run started is killed."""
    cpu_time: int = 5
    """RLIMIT_CPU, seconds of CPU per process (SIGXCPU, then SIGKILL one second later)."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS, bytes of address space per process (allocations beyond fail: MemoryError)."""
    processes: int = 16
    """RLIMIT_NPROC: processes and threads the sandbox uid may have at once (see docs/sandbox.md)."""
    file_size_bytes: int = 16 << 20
    """RLIMIT_FSIZE, the largest file the program may write."""
    open_files: int = 64
    """RLIMIT_NOFILE."""
    output_bytes: int = 1 << 20
    """Bytes of stdout (and, separately, stderr) kept; printing more kills the run."""
    tmpfs_bytes: int = 64 << 20
    """Size of each private tmpfs (work directory, masked directories) with a mount namespace."""
    cpus: int | None = None
    """Pin the program to this many CPUs (starting at the caller's current one) so a fork bomb
    cannot take every core; None: no pinning (pinned runs cannot migrate off a busy core, ~20%
    slower on a loaded machine). Soft: the program may widen its own affinity."""
    namespaces: bool = True
    """Use network/PID/mount namespaces when the machine allows them."""
    masks: tuple[str, ...] = WORLD_WRITABLE
    """Directories hidden behind a private, empty tmpfs (mount namespace only): the world-writable
    ones, plus any the program must not read (the dataset with the expected outputs). Without a
    mount namespace the world-writable ones are swept instead, and any other is an error."""
    python: str | None = None
    """Interpreter for the program; None picks this one, or one an unprivileged uid can run."""
    require: str = "any"
    """"full": raise SandboxError unless every layer of FULL applies (netns, pidns, ipcns,
    mountns, setuid, seccomp); "any": run with what the machine allows (a missing layer is
    warned about once per process). The environment variable R1LAB_SANDBOX_REQUIRE=full
    overrides "any", so a training run can insist without touching its config."""


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended."""

    returncode: int | None
    """Exit status; negative: killed by that signal; None: killed by the sandbox (time/output)."""
    stdout: str
    stderr: str
    timed_out: bool
    output_exceeded: bool = False
    wall_time: float = 0.0
    cpu_time: float = 0.0
    max_rss_bytes: int = 0
    isolation: tuple[str, ...] = ()
    """The isolation layers that were applied, e.g. ("rlimits", "setuid", "netns", ...)."""
    uid: int | None = None
    """The throwaway uid the program ran as, or None when it ran as the caller's uid."""

    @property
    def ok(self) -> bool:
        """The program exited normally with status 0 within its limits."""
        return self.returncode == 0 and not self.timed_out and not self.output_exceeded


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the sandbox do; found once per process by `probe_isolation`."""

    prefix: tuple[str, ...]
    """Command that enters the namespaces (`unshare ...`), or () without them."""
    namespaces: bool
    drop_uid: bool
    python: str
    """The interpreter the program runs under."""
    notes: tuple[str, ...] = ()
    """Why a layer is missing, for docs and error messages."""
    seccomp: bytes | None = field(default=None, repr=False)
    """The compiled seccomp filter (BPF) the program runs under, or None without one."""

    def layers(self, masks: tuple[str, ...] = WORLD_WRITABLE) -> tuple[str, ...]:
        """Names of the layers a run with these `masks` gets (docs/sandbox.md explains each)."""
        names = ["session", "rlimits", "scrubbed-env", "tmpdir", "isolated-python"]
        names += ["setuid", "no-new-privs"] if self.drop_uid else ["no-new-privs"]
        if self.seccomp is not None:
            names.append("seccomp")
        if self.namespaces:
            names += ["netns", "pidns", "ipcns", "mountns"]
            if masks:
                names.append("private-tmp")
        if self.drop_uid:
            names.append("uid-sweep")
            if not self.namespaces:
                names.append("ipc-sweep")
        return tuple(names)


def _runs_as(python: str, uid: int | None) -> bool:
    """Whether `python -I -S` starts and imports the stdlib as `uid` (None: as ourselves)."""
    kwargs = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    try:
        proc = subprocess.run(
            [python, "-I", "-S", "-c", "import json, os"],
            env={"PATH": SAFE_PATH},
            cwd="/",
            capture_output=True,
            timeout=10,
            **kwargs,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _unshare_works(cmd: tuple[str, ...]) -> bool:
    try:
        return subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=2)
def seccomp_filter(unix_sockets: bool = True) -> tuple[bytes | None, str]:
    """The seccomp filter as BPF bytes (compiled once by libseccomp), or None and the reason.

    Compiled here, where `pyseccomp` is importable; the sandbox's init (an isolated interpreter
    without site-packages) only hands the bytes to prctl(PR_SET_SECCOMP). Default: allow.
    Denied with EPERM: DENIED_SYSCALLS, and clone/unshare with any namespace flag; clone3 gets
    ENOSYS (its flags sit in memory a filter cannot read; the C library then falls back to
    clone); socket/socketpair other than AF_UNIX get EAFNOSUPPORT (no network even without a
    network namespace). `unix_sockets=False` (for runs without a network namespace) denies
    socket(AF_UNIX) too: the host's abstract unix sockets belong to its network namespace and
    have no file permissions to stop a connection. socketpair(AF_UNIX) stays allowed (pipes
    between the program's own processes: multiprocessing, asyncio). A system call of another
    architecture (x32, int 0x80) kills the process.
    """
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            if "errno" not in f.read().split():
                return None, "no seccomp filter: the kernel cannot return errors from one"
    except OSError:
        return None, "no seccomp filter: the kernel has no seccomp filters"
    try:
        import pyseccomp as sc
    except Exception as e:  # noqa: BLE001 - ImportError, or OSError: no libseccomp.so.2
        return None, f"no seccomp filter: pyseccomp over libseccomp unavailable ({e})"
    try:
        filt = sc.SyscallFilter(sc.ALLOW)
        for name in DENIED_SYSCALLS:
            with contextlib.suppress(OSError, ValueError):  # not a system call on this arch
                filt.add_rule(sc.ERRNO(errno.EPERM), name)
        for flag in CLONE_NS_FLAGS:
            for call in ("unshare", "clone"):
                filt.add_rule(sc.ERRNO(errno.EPERM), call, sc.Arg(0, sc.MASKED_EQ, flag, flag))
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        not_unix = sc.Arg(0, sc.NE, socket.AF_UNIX)
        filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socketpair", not_unix)
        if unix_sockets:
            filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", not_unix)
        else:
            filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket")
        with tempfile.TemporaryFile() as f:
            filt.export_bpf(f)
            f.seek(0)
            return f.read(), ""
    except Exception as e:  # noqa: BLE001 - an old libseccomp: run without, and say so
        return None, f"no seccomp filter: libseccomp could not build it ({e})"


@functools.lru_cache(maxsize=8)
def probe_isolation(namespaces: bool = True, python: str | None = None) -> Isolation:
    """Find which isolation layers work here: tries them once, never assumes.

    A layer that is missing although asked for is a RuntimeWarning, once per process: floor
    mode must never be chosen silently.
    """
    notes: list[str] = []
    root = os.geteuid() == 0
    prefix: tuple[str, ...] = ()
    unshare = shutil.which("unshare", path=_SBIN_PATH)
    if namespaces and unshare is None:
        notes.append("no `unshare` binary: no network/PID/IPC/mount namespaces")
    elif namespaces:
        user = () if root else ("--user", "--map-root-user")
        cmd = (unshare, *user, *NS_FLAGS)
        if _unshare_works(cmd):
            prefix = cmd
        else:
            notes.append(
                "`unshare --net --pid --ipc --mount` is not permitted here (a container without "
                "CAP_SYS_ADMIN?): no network/PID/IPC/mount namespaces"
            )
    candidates = (
        [python] if python else [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"]
    )
    drop_uid = False
    chosen = python or sys.executable
    if root:
        # Root ignores RLIMIT_NPROC and can do anything to the host: the program must run as a
        # throwaway uid, with an interpreter that uid can read (this one may live under /root).
        for cand in candidates:
            if cand and os.path.exists(cand) and _runs_as(cand, UID_BASE):
                chosen, drop_uid = cand, True
                break
        else:
            tried = ", ".join(c for c in candidates if c)
            notes.append(f"no interpreter an unprivileged uid can run (tried {tried})")
    else:
        notes.append("not root: the program runs as the caller's uid")
    bpf, why = seccomp_filter(unix_sockets=bool(prefix))
    if bpf is None:
        notes.append(why)
    if notes:
        warnings.warn(
            "r1lab sandbox: model-written code will run with LESS isolation than asked for: "
            + "; ".join(notes)
            + f". Set {REQUIRE_ENV}=full (or the code reward's require=full) to refuse instead.",
            RuntimeWarning,
            stacklevel=2,
        )
    return Isolation(prefix, bool(prefix), drop_uid, chosen, tuple(notes), bpf)


def require_isolation(limits: Limits = Limits()) -> Isolation:
    """The isolation runs with `limits` get; SandboxError if full isolation is required and
    missing. Call it once at start-up to refuse a training run before anything is loaded."""
    iso = probe_isolation(limits.namespaces, limits.python)
    env = os.environ.get(REQUIRE_ENV, "").strip().lower()
    for value, source in ((limits.require, "Limits.require"), (env, REQUIRE_ENV)):
        if value not in ("", "any", "full"):
            raise SandboxError(f"{source}={value!r}: expected 'any' or 'full'")
    hidden = [m for m in limits.masks if m not in WORLD_WRITABLE]
    if hidden and not iso.namespaces:
        raise SandboxError(
            f"cannot hide {', '.join(hidden)} from the program without a mount namespace: "
            + ("; ".join(iso.notes) or "namespaces switched off (Limits.namespaces=False)")
        )
    if "full" not in (limits.require, env):
        return iso
    have = iso.layers(limits.masks)
    missing = [name for name in FULL if name not in have]
    if missing:
        source = "Limits.require" if limits.require == "full" else REQUIRE_ENV
        why = "; ".join(iso.notes) or "namespaces switched off (Limits.namespaces=False)"
        raise SandboxError(
            f"full sandbox isolation is required ({source}=full) but {', '.join(missing)} "
            f"cannot be applied here: {why}"
        )
    return iso


_uid_counter = itertools.count()
_uid_lock = threading.Lock()


def _next_uid() -> int:
    with _uid_lock:
        n = next(_uid_counter) % 64
    return UID_BASE + 1 + (os.getpid() % 4_194_304) * 64 + n


def _current_cpu() -> int | None:
    """The CPU this thread last ran on (field 39 of /proc/thread-self/stat), or None."""
    try:
        with open("/proc/thread-self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        return None


def _cpu_set(cpus: int | None) -> list[int] | None:
    """`cpus` CPUs we may use, starting at the one we run on: where the caller's work would go."""
    if cpus is None or not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if cpus >= len(allowed):
        return None
    here = _current_cpu()
    start = allowed.index(here) if here in allowed else 0
    return [allowed[(start + k) % len(allowed)] for k in range(max(1, cpus))]


def _rlimits(limits: Limits) -> dict[str, tuple[int, int]]:
    cpu = max(1, int(limits.cpu_time))
    return {
        "cpu": (cpu, cpu + 1),
        "as": (limits.memory_bytes, limits.memory_bytes),
        "nproc": (limits.processes, limits.processes),
        "fsize": (limits.file_size_bytes, limits.file_size_bytes),
        "nofile": (limits.open_files, limits.open_files),
        "core": (0, 0),
    }


def _collect(
    proc: subprocess.Popen, limits: Limits, deadline: float
) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr until both close, the deadline passes, or one exceeds the cap."""
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}  # type: ignore[union-attr]
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    timed_out = exceeded = False
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            # Once the top process is gone, only an escaped daemon can hold the pipes open:
            # give the last bytes a moment, then stop listening to it.
            if exited_at is not None and now - exited_at > 0.05:
                break
            wait = min(deadline - now, 0.01 if exited_at is not None else 0.05)
            for key, _ in sel.select(wait):
                fd = key.fd
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(fd)
                    continue
                room = limits.output_bytes - len(bufs[fd])
                bufs[fd] += chunk[: max(room, 0)]
                if len(chunk) > room:
                    exceeded = True
            if exceeded:
                break
    finally:
        sel.close()
    out, err = bufs.values()
    return bytes(out), bytes(err), timed_out, exceeded


def _kill_group(proc: subprocess.Popen) -> None:
    # Before wait(): the unreaped leader keeps its pid (= the group id) from being reused.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def processes_of(uid: int) -> list[int]:
    """Pids of live processes (zombies excluded: they run nothing) whose real uid is `uid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                state = ""
                for line in f:
                    if line.startswith("State:"):
                        state = line.split()[1]
                    elif line.startswith("Uid:"):
                        if int(line.split()[1]) == uid and state not in ("Z", "X"):
                            pids.append(int(entry))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _kill_as(uid: int) -> None:
    """`kill(-1, SIGKILL)` as `uid`: every process of that uid but the caller, in one step.

    The kernel holds the task list while it signals (and a fork that races with it fails), so a
    process that forks in a loop cannot slip a child past it, as it can past a /proc scan that
    sees only the exiting parent. Run through the `kill` binary: `subprocess` switches uid in C,
    between fork and exec, which is safe in a threaded caller. Its exit status says nothing
    useful (procps returns 1 either way); the scan in `_sweep_uid` decides when we are done.
    """
    kill = shutil.which("kill", path=SAFE_PATH)
    if kill is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [kill, "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            env={"PATH": SAFE_PATH},
            cwd="/",
            capture_output=True,
            timeout=5,
        )


def _sweep_uid(uid: int, deadline_s: float = 2.0) -> None:
    """Kill every process of the throwaway uid and wait until none runs.

    Catches daemons that left the process group (and chains of processes that fork and exit to
    dodge a scan), and waits out processes that were sent SIGKILL but have not finished dying,
    so nothing of the run executes after we return: done when a `kill(-1)` as the uid and two
    /proc scans in a row find nothing alive.
    """
    end = time.monotonic() + deadline_s
    quiet = 0
    while time.monotonic() < end and quiet < 2:
        if quiet == 0:  # after a kill(-1) that found nothing, a second scan is enough
            _kill_as(uid)
        pids = processes_of(uid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        quiet = 0 if pids else quiet + 1
        if pids:
            time.sleep(0.002)


# /proc/sysvipc/<kind>: (id column, the ctl call that removes one). IPC_RMID is 0.
_SYSV = {"shm": ("shmid", "shmctl"), "msg": ("msqid", "msgctl"), "sem": ("semid", "semctl")}


def _sweep_ipc(uid: int) -> None:
    """Remove the SysV IPC objects (shared memory, message queues, semaphores) `uid` owns.

    Without an IPC namespace they live on the host and outlive the run (shm_rmid_forced is 0
    by default); the seccomp layer denies them in the first place where it applies.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for kind, (id_col, ctl) in _SYSV.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
        except (OSError, ValueError):
            continue
        cols = header.split()
        for row in rows:
            fields = dict(zip(cols, row.split(), strict=False))
            try:
                ident, owners = int(fields[id_col]), {int(fields["uid"]), int(fields["cuid"])}
            except (KeyError, ValueError):
                continue
            if uid in owners:
                # shmctl/msgctl(id, IPC_RMID, NULL); semctl(id, semnum, IPC_RMID)
                getattr(libc, ctl)(ident, 0, 0 if kind == "sem" else None)


def _sweep_files(uid: int, dirs: tuple[str, ...]) -> None:
    """Remove what the throwaway uid left at the top of world-writable directories."""
    for d in dirs:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _read_status(fd: int) -> dict:
    data = b""
    try:
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    status: dict = {}
    for line in data.decode(errors="replace").splitlines():
        try:
            status.update(json.loads(line))
        except json.JSONDecodeError:
            continue
    return status


def _unmasked(iso: Isolation, limits: Limits) -> tuple[str, ...]:
    """World-writable directories the program could write to on the host."""
    masked = limits.masks if iso.namespaces else ()
    return tuple(d for d in WORLD_WRITABLE if d not in masked)


def _write_inputs(host_dir: str, code: str, stdin: str, owner: int | None) -> tuple[str, str]:
    """Write the program and its stdin; `owner` gets the directory when the program runs there."""
    program = os.path.join(host_dir, "main.py")
    with open(program, "wb") as f:
        f.write(code.encode("utf-8", errors="replace"))
    stdin_path = os.path.join(host_dir, "stdin")
    with open(stdin_path, "wb") as f:
        f.write(stdin.encode("utf-8", errors="replace"))
    if owner is not None:
        os.chown(host_dir, owner, owner)
        os.chown(program, owner, owner)
    return program, stdin_path


def _launch(
    iso: Isolation,
    limits: Limits,
    uid: int | None,
    host_dir: str,
    program: str,
    stdin_path: str,
    status_fd: int,
) -> subprocess.Popen:
    """Start the init (inside the namespaces, if any) in a new session."""
    env = {"PATH": SAFE_PATH, "HOME": host_dir, "TMPDIR": host_dir}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
    cfg = {
        "program": program,
        "workdir": host_dir,
        "mountns": iso.namespaces,
        "pidns": iso.namespaces,
        "masks": list(limits.masks),
        "tmpfs_bytes": limits.tmpfs_bytes,
        "uid": uid,
        "gid": uid,
        "python": iso.python,
        "rlimits": _rlimits(limits),
        "cpus": _cpu_set(limits.cpus),
        "seccomp": iso.seccomp.hex() if iso.seccomp is not None else None,
        "wall": limits.wall_time,
        "status_fd": status_fd,
        "env": env,
    }
    cmd = [*iso.prefix, sys.executable, "-I", "-S", str(INIT), json.dumps(cfg)]
    with open(stdin_path, "rb") as fin:
        return subprocess.Popen(
            cmd,
            stdin=fin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_fd,),
            env={"PATH": SAFE_PATH},
            cwd=host_dir,
            start_new_session=True,
        )


def run_python(code: str, stdin: str = "", limits: Limits = Limits()) -> SandboxResult:
    """Run `code` as `python -I -S main.py` in a fresh sandbox and return how it ended."""
    iso = require_isolation(limits)
    if os.geteuid() == 0 and not iso.drop_uid:
        # As root the program could write any file and kill any process: never run it so.
        raise SandboxError(
            f"refusing to run untrusted code as root: {'; '.join(iso.notes)}. Make an "
            "interpreter readable by other users, or name one with Limits(python=...)"
        )
    uid = _next_uid() if iso.drop_uid else None
    start = time.monotonic()
    host_dir = tempfile.mkdtemp(prefix="r1lab-sbx-")
    out, err, timed_out, exceeded, status = b"", b"", False, False, {}
    try:
        owner = uid if not iso.namespaces else None  # with namespaces it runs in a tmpfs
        program, stdin_path = _write_inputs(host_dir, code, stdin, owner)
        status_r, status_w = os.pipe()
        try:
            proc = _launch(iso, limits, uid, host_dir, program, stdin_path, status_w)
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        try:
            out, err, timed_out, exceeded = _collect(proc, limits, start + limits.wall_time)
        finally:
            _kill_group(proc)
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
            status = _read_status(status_r)
            if uid is not None:
                # In a PID namespace a clean exit already killed everything; after our SIGKILL
                # the namespace may still be dying, so wait for it.
                if not iso.namespaces or timed_out or exceeded or "status" not in status:
                    _sweep_uid(uid)
                if not iso.namespaces:
                    _sweep_ipc(uid)  # with one, the IPC namespace died with the run
                _sweep_files(uid, _unmasked(iso, limits))
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
    if "setup_error" in status:
        raise SandboxError(f"sandbox setup failed: {status['setup_error']}")
    timed_out = timed_out or bool(status.get("timeout"))
    finished = "status" in status and not timed_out and not exceeded
    return SandboxResult(
        returncode=os.waitstatus_to_exitcode(status["status"]) if finished else None,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        timed_out=timed_out,
        output_exceeded=exceeded,
        wall_time=time.monotonic() - start,
        cpu_time=float(status.get("cpu", 0.0)),
        max_rss_bytes=int(status.get("maxrss_kb", 0)) * 1024,
        isolation=iso.layers(limits.masks),
        uid=uid,
    )
