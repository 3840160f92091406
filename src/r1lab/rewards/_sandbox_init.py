"""The sandbox's first process: sets up the jail, runs the untrusted program, reports how it ended.

Run by `r1lab.rewards.sandbox` as `python -I -S _sandbox_init.py CONFIG_JSON`, either directly or
as PID 1 of fresh network/PID/mount namespaces (`unshare ... --fork`). Standard library only, and
it imports nothing from r1lab: it runs under an isolated interpreter.

Steps: (1) with a mount namespace, mount private size-capped tmpfs over the world-writable
directories and over the work directory, then write the program there; (2) fork; the child sets
rlimits and CPU affinity, drops to the sandbox uid, forbids privilege gain, installs the seccomp
filter the parent compiled, and execs the program's interpreter;
(3) wait for it under a wall-clock alarm, write one JSON status line (wait status, CPU time, peak
memory) to the status pipe, and (4) kill whatever the program left behind: as PID 1 of a PID
namespace simply by exiting (the kernel kills every process in the namespace), otherwise by
killing the process group.
"""

import ctypes
import json
import os
import resource
import signal
import sys

MS_NOSUID = 2
MS_NODEV = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}


def _libc():
    return ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(libc, bpf):
    """Load a compiled BPF filter (struct sock_filter[], 8 bytes each); needs no-new-privs."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def mount_tmpfs(path, size_bytes):
    libc = _libc()
    opts = f"size={int(size_bytes)},mode=1777".encode()
    if libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def prepare_workdir(cfg, program):
    """The directory the program runs in; in a mount namespace a fresh tmpfs nobody else sees."""
    workdir = cfg["workdir"]
    if not cfg["mountns"]:
        return workdir
    for path in cfg["masks"]:
        if os.path.isdir(path):
            mount_tmpfs(path, cfg["tmpfs_bytes"])
    # A mask over /tmp hides the host's work directory; recreate the path inside the new tmpfs.
    os.makedirs(workdir, exist_ok=True)
    mount_tmpfs(workdir, cfg["tmpfs_bytes"])
    os.chmod(workdir, 0o700)
    with open(os.path.join(workdir, "main.py"), "wb") as f:
        f.write(program)
    if cfg["uid"] is not None:
        os.chown(workdir, cfg["uid"], cfg["gid"])
        os.chown(os.path.join(workdir, "main.py"), cfg["uid"], cfg["gid"])
    return workdir


def run_child(cfg, workdir, status_fd):
    """In the forked child: limits, identity, then exec. Never returns."""
    try:
        for name, value in cfg["rlimits"].items():
            soft, hard = value
            resource.setrlimit(RLIMITS[name], (soft, hard))
        if cfg["cpus"]:
            os.sched_setaffinity(0, cfg["cpus"])
        os.chdir(workdir)
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        libc = _libc()
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if cfg["seccomp"]:
            # Last, as the program's own uid: from here on only execve is left to do.
            install_seccomp(libc, bytes.fromhex(cfg["seccomp"]))
        python = cfg["python"]
        os.execve(python, [python, "-I", "-S", "main.py"], cfg["env"])
    except BaseException as e:  # noqa: BLE001 - any failure here must end the child, loudly
        # The sandbox's fault, not the program's: the parent raises it instead of scoring it.
        try:
            msg = json.dumps({"setup_error": f"could not start the program: {e}"}) + "\n"
            os.write(status_fd, msg.encode())
        finally:
            os._exit(126)


def main():
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    # The program must not inherit the status pipe: it could forge its own exit status.
    os.set_inheritable(status_fd, False)

    def report(**status):
        os.write(status_fd, (json.dumps(status) + "\n").encode())

    try:
        with open(cfg["program"], "rb") as f:
            program = f.read()
        workdir = prepare_workdir(cfg, program)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        report(setup_error=f"{type(e).__name__}: {e}")
        return 0

    pid = os.fork()
    if pid == 0:
        run_child(cfg, workdir, status_fd)

    def on_alarm(signum, frame):
        # Our own deadline, a little after the parent's: the sandbox ends even if the parent died.
        report(timeout=True)
        if cfg["pidns"]:
            os._exit(0)  # PID 1 exits: the kernel kills every process in the namespace
        os.killpg(os.getpgrp(), signal.SIGKILL)  # kills this process too

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, cfg["wall"] + 1.0)
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    signal.setitimer(signal.ITIMER_REAL, 0)
    report(
        status=status,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_kb=usage.ru_maxrss,
    )
    os.close(status_fd)
    if not cfg["pidns"]:
        # Background children the program left in our process group die with us. (In a PID
        # namespace our exit alone kills every process the program started.)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
