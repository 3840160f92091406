"""The sandbox against hostile programs: each is contained within its limits and the host is untouched.

Most tests run twice: with the namespaces this machine allows, and without them (the rlimit,
uid and process-group floor every machine gets).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from r1lab.rewards.sandbox import Limits, SandboxResult, probe_isolation, processes_of, run_python

pytestmark = pytest.mark.timeout(60)

MODES = {
    "namespaces": Limits(wall_time=1.0, cpu_time=1),
    "floor": Limits(wall_time=1.0, cpu_time=1, namespaces=False),
}


@pytest.fixture(params=list(MODES))
def limits(request) -> Limits:
    return MODES[request.param]


def run(code: str, limits: Limits, stdin: str = "") -> tuple[SandboxResult, float]:
    start = time.monotonic()
    result = run_python(code, stdin, limits)
    return result, time.monotonic() - start


def assert_no_leftovers(result: SandboxResult) -> None:
    if result.uid is not None:
        assert processes_of(result.uid) == [], "processes of the sandbox uid outlived the run"


def sandbox_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("r1lab-sbx-")}


def test_runs_a_program(limits):
    result, _ = run("import sys\nprint(sys.stdin.read()[::-1])", limits, stdin="abc")
    assert result.ok and result.stdout == "cba\n" and result.returncode == 0
    assert "rlimits" in result.isolation and "session" in result.isolation


def test_exit_status_and_stderr(limits):
    result, _ = run("import sys\nsys.stderr.write('boom')\nsys.exit(3)", limits)
    assert result.returncode == 3 and not result.ok and result.stderr == "boom"


def test_isolated_interpreter(limits):
    result, _ = run("import sys\nprint(sys.flags.isolated, sys.flags.no_site)", limits)
    assert result.stdout.split() == ["1", "1"]


def test_infinite_loop_is_killed(limits):
    result, took = run("while True:\n    pass", limits)
    assert not result.ok
    assert took < limits.wall_time + 1.5
    assert_no_leftovers(result)


def test_sleeping_forever_hits_the_wall_clock(limits):
    result, took = run("import time\ntime.sleep(60)", limits)
    assert result.timed_out and result.returncode is None
    assert limits.wall_time <= took < limits.wall_time + 1.5


def test_fork_bomb_is_contained(limits):
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result, took = run(code, limits)
    assert not result.ok and took < limits.wall_time + 2.0
    assert_no_leftovers(result)


def test_process_limit_applies(limits):
    # Root ignores RLIMIT_NPROC: this passes only because the program runs as a throwaway uid.
    if "setuid" not in probe_isolation(limits.namespaces).layers() and os.geteuid() == 0:
        pytest.skip("the program runs as root here; RLIMIT_NPROC cannot apply")
    code = (
        "import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n"
        "    n += 1\nprint(n)"
    )
    result, _ = run(code, limits)
    assert result.returncode == 0
    assert 0 < int(result.stdout) < limits.processes


def test_memory_bomb_fails_fast(limits):
    result, took = run("x = bytearray(8 << 30)", limits)
    assert result.returncode == 1 and "MemoryError" in result.stderr and took < 2.0
    # Growing: every page is touched, so keep the cap small enough to hit well within 1 s.
    small = Limits(**{**limits.__dict__, "memory_bytes": 128 << 20})
    result, _ = run("x = []\nwhile True:\n    x.append(bytearray(1 << 24))", small)
    assert result.returncode == 1 and "MemoryError" in result.stderr


def test_printing_a_gigabyte_is_cut_off(limits):
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)"
    result, took = run(code, limits)
    assert result.output_exceeded and not result.ok and result.returncode is None
    assert len(result.stdout) <= limits.output_bytes
    assert took < 3.0


def test_file_size_limit(limits):
    code = "with open('big', 'wb') as f:\n    f.write(b'x' * (64 << 20))"
    result, _ = run(code, limits)
    assert result.returncode != 0  # SIGXFSZ or OSError: the write is cut at RLIMIT_FSIZE


def test_environment_is_scrubbed(limits, monkeypatch):
    secret = "r1lab-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("R1LAB_TEST_SECRET", secret)
    code = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in ('1', str(os.getppid()), 'self'):\n"
        "    try:\n        print(open(f'/proc/{pid}/environ').read())\n"
        "    except OSError as e:\n        print(e)\n"
    )
    result, _ = run(code, limits)
    assert result.returncode == 0
    assert secret not in result.stdout + result.stderr
    assert "R1LAB_TEST_SECRET" not in result.stdout
    assert "HOME" in result.stdout and "PATH" in result.stdout


def test_cannot_write_outside_its_directory(limits, tmp_path):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("original")
    escape = f"/tmp/r1lab-escape-{uuid.uuid4().hex}"
    code = f"""
import os
for path in ({str(sentinel)!r}, {str(tmp_path / "new.txt")!r}, {escape!r}, '/etc/r1lab-pwned'):
    try:
        with open(path, 'w') as f:
            f.write('pwned')
        print('wrote', path)
    except OSError as e:
        print('denied', path, e.errno)
with open('inside.txt', 'w') as f:
    f.write('fine')
print(os.path.exists('inside.txt'))
"""
    # Without masks the host's /tmp is visible: only the uid keeps the program out.
    for lim in (limits, Limits(**{**limits.__dict__, "masks": ()})):
        result, _ = run(code, lim)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("True")
        assert sentinel.read_text() == "original"
        assert not (tmp_path / "new.txt").exists()
        assert not os.path.exists("/etc/r1lab-pwned")
        # /tmp is world-writable: the write lands in a private tmpfs, or on the host and is
        # swept when the run ends (its owner, the throwaway uid, marks it).
        if "private-tmp" in result.isolation or "uid-sweep" in result.isolation:
            assert not os.path.exists(escape)
        elif os.path.exists(escape):
            os.remove(escape)
    assert sentinel.read_text() == "original"


def test_work_directory_is_removed(limits):
    before = sandbox_dirs()
    run("open('x', 'w').write('y')\nimport os\nos.mkdir('d')", limits)
    assert sandbox_dirs() <= before


def test_no_network(limits):
    layers = probe_isolation(limits.namespaces).layers()
    if "netns" not in layers and "seccomp" not in layers:
        pytest.skip("no network namespace or seccomp filter: the program could reach loopback")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')
    print('connected')
except OSError as e:
    print('refused', e.errno)
"""
    try:
        result, _ = run(code, limits)
        assert result.stdout.startswith("refused"), result.stdout + result.stderr
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_cannot_kill_its_parent_or_the_host(limits):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    kill_all = (
        "setuid" in probe_isolation(limits.namespaces).layers()
        or "pidns" in probe_isolation(limits.namespaces).layers()
    )
    code = f"""
import os, signal
targets = [os.getppid(), {os.getpid()}, {bystander.pid}, 1]
for pid in targets:
    try:
        os.kill(pid, signal.SIGKILL)
        print('killed', pid)
    except OSError as e:
        print('denied', pid, e.errno)
try:
    os.killpg(os.getpgrp(), signal.SIGKILL)
except OSError as e:
    print('killpg denied', e.errno)
{"os.kill(-1, signal.SIGKILL)" if kill_all else ""}
"""
    try:
        result, _ = run(code, limits)
        time.sleep(0.1)
        assert bystander.poll() is None, "a host process was killed"
        assert not result.ok  # it killed itself at the latest with killpg
        os.kill(os.getpid(), 0)  # this test process is alive (it would not get here otherwise)
    finally:
        bystander.kill()
        bystander.wait()


def _shared_dir() -> Path:
    # World-writable and outside pytest's private (0700) tmp tree, so the sandbox uid could
    # write there if anything of it survived.
    path = Path(tempfile.mkdtemp(prefix="r1lab-test-shared-", dir="/tmp"))
    path.chmod(0o1777)
    return path


DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep({delay})
        with open({path!r}, 'w') as f:
            f.write('alive')
        os._exit(0)
    os._exit(0)
print('parent done')
"""


def test_daemon_does_not_outlive_the_run(limits):
    shared = _shared_dir()
    lim = Limits(**{**limits.__dict__, "masks": ()})  # keep /tmp visible: the write could land
    try:
        # Control: without the delay the daemon writes before the run ends, so the path is
        # writable from inside and the real test below can fail.
        control, _ = run(
            DAEMON.format(delay=0, path=str(shared / "control")) + "time.sleep(0.5)", lim
        )
        assert control.ok and (shared / "control").read_text() == "alive"

        result, _ = run(DAEMON.format(delay=1.0, path=str(shared / "late")), lim)
        assert result.ok and result.stdout.strip() == "parent done"
        assert_no_leftovers(result)
        time.sleep(1.5)
        assert not (shared / "late").exists(), "a daemonised child outlived the sandbox"
    finally:
        for p in shared.iterdir():
            p.unlink()
        shared.rmdir()


def test_concurrent_runs_do_not_share_a_process_budget():
    # A fork bomb in one run must not starve another run of processes (distinct uids).
    if "setuid" not in probe_isolation().layers():
        pytest.skip("no throwaway uids here")
    import threading

    out = {}
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    t = threading.Thread(target=lambda: out.update(bomb=run_python(bomb, "", Limits(wall_time=2))))
    t.start()
    time.sleep(0.3)
    calm = run_python(
        "import os\npid = os.fork()\nos._exit(0) if pid == 0 else print('ok')",
        "",
        Limits(wall_time=2),
    )
    t.join()
    assert calm.ok and calm.stdout.strip() == "ok"
    assert out["bomb"].uid != calm.uid


def test_cpu_pinning():
    result = run_python("import os\nprint(len(os.sched_getaffinity(0)))", "", Limits(cpus=1))
    assert result.stdout.strip() == "1"
    unpinned = run_python("import os\nprint(len(os.sched_getaffinity(0)))", "", Limits())
    assert unpinned.stdout.strip() == str(len(os.sched_getaffinity(0)))


@pytest.mark.filterwarnings("ignore:r1lab sandbox")  # the missing interpreter, warned about
def test_a_broken_sandbox_raises_instead_of_scoring():
    # An interpreter that cannot start is the machine's problem, not a failing program; as
    # root, one the throwaway uid cannot run would mean running the program as root.
    from r1lab.rewards.sandbox import SandboxError

    match = "refusing to run untrusted code as root" if os.geteuid() == 0 else "could not start"
    with pytest.raises(SandboxError, match=match):
        run_python("print(1)", "", Limits(python="/nonexistent/python3"))
    # A limit the kernel refuses (RLIMIT_NOFILE above fs.nr_open) fails in the sandbox's child.
    with pytest.raises(SandboxError, match="could not start the program"):
        run_python("print(1)", "", Limits(open_files=1 << 30))


# --- Escapes found by the audit (issue 10): each failed before the layer that now stops it. ---

LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
IPC_CREAT = 0o1000


def _sysv_keys(kind: str) -> set[int]:
    """Keys of the host's SysV IPC objects of one kind ('shm', 'msg', 'sem')."""
    with open(f"/proc/sysvipc/{kind}") as f:
        return {int(line.split()[0]) for line in f.readlines()[1:] if line.strip()}


def _remove_sysv(key: int) -> None:
    # Clean up what an old (unfixed) sandbox would have left, so a failure does not leak.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(key, 0, 0)
    if shmid >= 0:
        libc.shmctl(shmid, 0, None)  # IPC_RMID
    msqid = libc.msgget(key, 0)
    if msqid >= 0:
        libc.msgctl(msqid, 0, None)


def test_sysv_ipc_does_not_outlive_the_run(limits):
    key = int.from_bytes(os.urandom(3), "big") + 0x5100_0000
    make = (
        LIBC + f"key = {key}\n"
        f"shm = libc.shmget(key, 16 << 20, {IPC_CREAT} | 0o666)\n"
        "if shm >= 0:\n"
        "    addr = libc.shmat(shm, None, 0)\n"
        f"msq = libc.msgget(key, {IPC_CREAT} | 0o666)\n"
        "if msq >= 0:\n"
        "    buf = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + 6)\n"
        "    ctypes.c_long.from_buffer(buf).value = 1\n"
        "    buf[ctypes.sizeof(ctypes.c_long):] = b'secret'\n"
        "    libc.msgsnd(msq, buf, 6, 0)\n"
        "print(shm, msq, ctypes.get_errno())\n"
    )
    read = (
        LIBC + f"msq = libc.msgget({key}, 0)\n"
        "buf = ctypes.create_string_buffer(64)\n"
        "n = libc.msgrcv(msq, buf, 56, 0, 0o4000) if msq >= 0 else -1\n"  # IPC_NOWAIT
        "print('got', buf.raw[8:8 + n] if n > 0 else b'')\n"
    )
    try:
        result, _ = run(make, limits)
        assert result.returncode == 0, result.stderr
        assert key not in _sysv_keys("shm"), "a shared memory segment outlived the run"
        assert key not in _sysv_keys("msg"), "a message queue outlived the run"
        second, _ = run(read, limits)
        assert second.returncode == 0, second.stderr
        assert "secret" not in second.stdout, "a message crossed from one run to the next"
    finally:
        _remove_sysv(key)


def _no_seccomp() -> str:
    """Why this machine cannot build the seccomp filter ('' if it can)."""
    from r1lab.rewards.sandbox import seccomp_filter

    return seccomp_filter()[1]


# x86_64 system call numbers; each call must fail with EPERM (clone3: ENOSYS, so the C library
# falls back to clone, whose flags the filter can see).
DENIED_SYSCALLS = {
    "unshare(CLONE_NEWUSER)": (272, "0x10000000"),
    "unshare(CLONE_NEWNS)": (272, "0x20000"),
    "unshare(CLONE_NEWNET)": (272, "0x40000000"),
    "clone(CLONE_NEWUSER)": (56, "0x10000000 | 17, 0, 0, 0, 0"),
    "setns": (308, "0, 0"),
    "mount": (165, "b'none', b'/tmp', b'tmpfs', 0, None"),
    "ptrace(TRACEME)": (101, "0, 0, 0, 0"),
    "keyctl": (250, "0, 0, 0, 0, 0"),
    "add_key": (248, "b'user', b'x', b'y', 1, -3"),
    "bpf": (321, "0, 0, 0"),
    "perf_event_open": (298, "0, 0, -1, -1, 0"),
    "userfaultfd": (323, "0"),
    "memfd_create": (319, "b'x', 0"),
    "io_uring_setup": (425, "1, 0"),
    "personality": (135, "0x0040000"),
    "kexec_load": (246, "0, 0, 0, 0"),
    "init_module": (175, "0, 0, b''"),
    "open_by_handle_at": (304, "0, 0, 0"),
    "shmget": (29, "0, 4096, 0o1000 | 0o600"),
    "msgget": (68, "0, 0o1000 | 0o600"),
    "semget": (64, "0, 1, 0o1000 | 0o600"),
}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 system call numbers")
def test_dangerous_system_calls_are_denied(limits):
    if _no_seccomp():
        pytest.skip(_no_seccomp())
    lines = [LIBC, "import errno, json\nout = {}\n"]
    for name, (nr, args) in DENIED_SYSCALLS.items():
        lines.append(
            f"r = libc.syscall({nr}, {args})\n"
            "if r == 0 and os.getpid() != PID:\n    os._exit(0)\n"  # a clone that worked
            f"out[{name!r}] = errno.errorcode.get(ctypes.get_errno(), '?') if r < 0 else 'ALLOWED'\n"
        )
    lines.insert(1, "PID = os.getpid()\n")
    lines.append(
        "r = libc.syscall(435, 0, 0)\nout['clone3'] = errno.errorcode.get(ctypes.get_errno())\n"
        "print(json.dumps(out))\n"
    )
    result, _ = run("".join(lines), limits)
    assert result.returncode == 0, result.stderr
    import json

    got = json.loads(result.stdout)
    assert got.pop("clone3") == "ENOSYS"
    assert got == dict.fromkeys(DENIED_SYSCALLS, "EPERM")
    assert "seccomp" in result.isolation


def test_no_host_abstract_unix_sockets(limits):
    # Abstract unix sockets belong to a network namespace and have no file permissions: without
    # a namespace of its own the program could talk to any host service listening on one.
    if _no_seccomp() and "netns" not in probe_isolation(limits.namespaces).layers():
        pytest.skip("neither a network namespace nor the seccomp filter in this mode")
    name = f"\0r1lab-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(1)
    server.settimeout(0.3)
    code = f"""
import socket
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({name!r})
    s.sendall(b'leak')
    print('connected')
except OSError as e:
    print('refused', e.errno)
"""
    try:
        result, _ = run(code, limits)
        assert result.stdout.startswith("refused"), result.stdout + result.stderr
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_user_namespace_cannot_lift_the_memory_caps(limits):
    if _no_seccomp():
        pytest.skip(_no_seccomp())
    # With its own user + mount namespace the program could mount an uncapped tmpfs and fill
    # the host's memory past RLIMIT_AS and the sandbox tmpfs cap.
    code = LIBC + (
        "r = libc.unshare(0x10000000 | 0x20000)\n"
        "print('unshare', r, ctypes.get_errno())\n"
        "if r == 0:\n"
        "    print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=1g'))\n"
    )
    result, _ = run(code, limits)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["unshare", "-1", "1"], result.stdout  # EPERM


def test_normal_programs_still_work_under_the_filter(limits):
    # What the filter must not break: threads, fork, subprocess, pipes, AF_UNIX sockets.
    code = """
import os, socket, subprocess, sys, threading, multiprocessing
t = threading.Thread(target=lambda: None); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(subprocess.run([sys.executable, '-c', 'print(5)'], capture_output=True).stdout.decode().strip())
a, b = socket.socketpair(); a.sendall(b'x'); print(b.recv(1).decode())
r, w = os.pipe(); os.write(w, b'y'); print(os.read(r, 1).decode())
"""
    result, _ = run(code, limits)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "5", "x", "y"]


FORK_CHAIN = """
import os, time
if os.fork() == 0:
    os.setsid()
    end = time.monotonic() + 4
    n = 0
    while time.monotonic() < end:
        n += 1
        if n % 20 == 0:
            with open({path!r}, 'a') as f:
                f.write('x')
        try:
            pid = os.fork()
        except OSError:
            continue
        if pid:
            os._exit(0)  # the parent exits, the child carries on: a sweep sees a zombie
print('parent done')
"""


def test_fork_chain_does_not_outlive_the_run(limits):
    # Each generation forks and exits; a sweep that reads /proc once can see only the zombie.
    # A high process limit, so zombies waiting to be reaped do not stop the chain by themselves.
    shared = _shared_dir()
    path = shared / "chain"
    lim = Limits(**{**limits.__dict__, "masks": (), "processes": 200})
    try:
        result, _ = run(FORK_CHAIN.format(path=str(path)), lim)
        assert result.ok, result.stderr
        assert_no_leftovers(result)
        size = path.stat().st_size if path.exists() else 0
        time.sleep(0.5)
        after = path.stat().st_size if path.exists() else 0
        assert after == size, "a forking chain kept writing after the run returned"
    finally:
        time.sleep(0.1)
        for p in shared.iterdir():
            p.unlink()
        shared.rmdir()


def test_missing_isolation_is_loud_and_can_be_required(monkeypatch):
    from r1lab.rewards import sandbox
    from r1lab.rewards.sandbox import SandboxError

    floor = Limits(wall_time=1.0, namespaces=False)
    with pytest.raises(SandboxError, match="netns"):
        run_python("print(1)", "", Limits(wall_time=1.0, namespaces=False, require="full"))
    monkeypatch.setenv("R1LAB_SANDBOX_REQUIRE", "full")
    with pytest.raises(SandboxError, match="R1LAB_SANDBOX_REQUIRE"):
        run_python("print(1)", "", floor)
    monkeypatch.delenv("R1LAB_SANDBOX_REQUIRE")
    assert run_python("print(1)", "", floor).ok  # asked for explicitly: allowed, not required

    # `unshare` refused (a container without CAP_SYS_ADMIN): a warning that names it, once.
    monkeypatch.setattr(sandbox, "_unshare_works", lambda cmd: False)
    sandbox.probe_isolation.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="namespaces"):
            sandbox.probe_isolation(True)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sandbox.probe_isolation(True)  # cached: not again
    finally:
        sandbox.probe_isolation.cache_clear()
