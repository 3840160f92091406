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
    if "netns" not in probe_isolation(limits.namespaces).layers():
        pytest.skip("no network namespace in this mode: the program could reach loopback")
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
