"""The code reward's harness inside the sandbox: run the solution, then a test's steps, report values.

Written into the sandbox as the program `main.py` by `r1lab.rewards.code`, with a call
`main(PAYLOAD_JSON, MARKER)` appended. Standard library only; it imports nothing from r1lab.

Nothing this process does is trusted: the solution runs first, in this same process, and may
patch, hook or rewrite anything here (builtins, this module, its frames, the payload). What keeps
a wrong solution from passing is what this process is NOT given: the payload holds the solution,
the test's setup statements and the test's *leaves* (the sub-expressions that need the solution,
e.g. `square(3)`), never an expected value or a comparison. This process reports each leaf's value
as plain typed data; the parent rebuilds it with exact types and compares it there, against
constants only the parent holds. A forged report must therefore contain the right values, which
is solving the problem. The defensive habits below (references taken before the solution runs,
exact-type encoding) keep honest-but-odd solutions from breaking the report; they are not the
security boundary.
"""

import builtins
import contextlib
import json
import os
import sys
import types

_MAX_DEPTH = 100


def encode(value, depth=0, _type=type, _repr=float.__repr__, _int_repr=int.__repr__):
    """`value` as JSON-able data that keeps its exact type; ValueError if it is anything else.

    Exact types only (`type(v) is int`, never isinstance): a subclass of int that claims to equal
    everything is not an int here. Containers are tagged so the parent rebuilds the same type:
    {"L": [...]} list, {"T": [...]} tuple, {"S": [...]} set, {"F": [...]} frozenset,
    {"D": [[k, v], ...]} dict, {"B": hex} bytes, {"C": [re, im]} complex, {"f": repr} float.
    """
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    t = _type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        _int_repr(value)  # ValueError past the interpreter's digit limit, here, not in dumps
        return value
    if t is float:
        return {"f": _repr(value)}
    if t is complex:
        return {"C": [_repr(value.real), _repr(value.imag)]}
    if t is bytes:
        return {"B": value.hex()}
    if t is list or t is tuple or t is set or t is frozenset:
        tag = {list: "L", tuple: "T", set: "S", frozenset: "F"}[t]
        return {tag: [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"D": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    raise ValueError(f"a {t.__name__} is not plain data")


def main(payload_json, marker):
    # Taken before the solution runs, so an honest solution that shadows or patches these
    # (a global named `json`, a replaced sys.stdout) does not break the report.
    write, exit_, dumps, stdout = os.write, os._exit, json.dumps, sys.__stdout__
    _exec, _eval, _compile, _str, _type = exec, eval, compile, str, type
    payload = json.loads(payload_json)
    harness = sys.modules["__main__"]  # noqa: F841 - keeps this module (and our globals) alive
    module = types.ModuleType("__main__")
    module.__file__ = "main.py"
    module.__builtins__ = builtins
    sys.modules["__main__"] = module  # pickle, dataclasses and `import __main__` see the solution
    ns = module.__dict__
    values = []
    error = None
    try:
        try:
            _exec(_compile(payload["program"], "solution.py", "exec"), ns)
        except SystemExit as e:
            # A program that ends with sys.exit(0) is done, not failed: its leaves decide.
            if e.code not in (None, 0):
                raise
        for kind, source in payload["steps"]:
            if kind == "exec":
                _exec(_compile(source, "test.py", "exec"), ns)
                continue
            try:
                values.append({"v": encode(_eval(_compile(source, "test.py", "eval"), ns))})
            except BaseException as e:  # noqa: BLE001 - a failing leaf fails its assert only
                values.append({"e": _str(_type(e).__name__)[:80]})
    except BaseException as e:  # noqa: BLE001 - SystemExit from the solution is a failure too
        try:
            error = f"{_type(e).__name__}: {e}"[:300]
        except BaseException:  # noqa: BLE001
            error = "an exception that cannot be printed"
    with contextlib.suppress(BaseException):  # the solution may have closed or replaced it
        stdout.flush()
    report = dumps({"values": values, "error": error})
    data = b"\n" + marker.encode() + report.encode() + b"\n"
    while data:
        data = data[write(1, data) :]
    exit_(0)  # now: no atexit hooks, threads or finalizers of the solution run after the report
