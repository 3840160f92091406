"""How often r1lab's math reward agrees with Math-Verify's own test cases.

    .venv/bin/python bench/mathverify_agreement.py PATH   # PATH: a Math-Verify checkout or git dir
    .venv/bin/python bench/mathverify_agreement.py PATH --show 3   # 3 examples per class

Math-Verify's `tests/` hold (gold, prediction, expected) tables in `pytest.mark.parametrize`
decorators. They are read from PATH with `ast` (nothing of theirs is copied into r1lab): every
parametrized test whose names include `gold`, `pred` and `expected` (or `result`) and whose rows
are literals (or an f-string over `math`). Each case is scored the way a training run scores it: the prediction inside
`<answer>...</answer>` through `math_accuracy`, the gold as the reference. A case is kept whatever
its extra settings (`precision`, `strict`, `allow_set_relation_comp`); r1lab runs one fixed
configuration, so a case that sets them differently is reported in its own class.

Disagreements are grouped by class: the Math-Verify test they come from, the direction (r1lab
stricter: "missed", r1lab more lenient: "extra"), and the reason r1lab's reward gave.
"""

from __future__ import annotations

import argparse
import ast
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from r1lab.rewards.math import math_accuracy

# Math-Verify's own defaults in its test helper; a case that sets another value is a config case.
DEFAULTS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}


def read_tests(path: Path) -> dict[str, str]:
    """Test files of a Math-Verify checkout (a work tree or a bare git dir): {name: source}."""
    if (path / "tests").is_dir():
        return {p.name: p.read_text() for p in sorted((path / "tests").glob("test_*.py"))}
    git = ["git", f"--git-dir={path}"]
    names = subprocess.run(
        [*git, "ls-tree", "--name-only", "HEAD", "tests/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        Path(n).name: subprocess.run(
            [*git, "show", f"HEAD:{n}"], capture_output=True, text=True, check=True
        ).stdout
        for n in names
        if Path(n).name.startswith("test_") and n.endswith(".py")
    }


def _row_values(elt: ast.expr) -> tuple | None:
    """A parametrize row's values: literals, or an f-string over `math` (`f"{math.sqrt(17):.15f}"`),
    evaluated with nothing else in reach; None for anything else."""
    try:
        return ast.literal_eval(elt)
    except ValueError:
        pass
    names = {n.id for n in ast.walk(elt) if isinstance(n, ast.Name)}
    if names - {"math"} or any(isinstance(n, ast.Lambda) for n in ast.walk(elt)):
        return None
    code = compile(ast.Expression(elt), "<row>", "eval")
    return eval(code, {"__builtins__": {}, "math": math})  # noqa: S307 - names checked above


def cases(files: dict[str, str]) -> tuple[list[dict], int]:
    """(gold, pred, expected, settings) rows of every parametrized gold/pred test; and how many
    rows were skipped because they are not literals (an f-string, say)."""
    rows, skipped = [], 0
    for fname, source in files.items():
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if not (
                    isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith("parametrize")
                ):
                    continue
                names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                want = "expected" if "expected" in names else "result"
                if not {"gold", "pred", want} <= set(names):
                    continue
                for elt in dec.args[1].elts:
                    row = _row_values(elt)
                    if row is None:
                        skipped += 1
                        continue
                    values = dict(zip(names, row, strict=True))
                    settings = {k: v for k, v in values.items() if k in DEFAULTS}
                    rows.append(
                        {
                            "test": f"{fname}::{node.name}",
                            "line": elt.lineno,
                            "gold": values["gold"],
                            "pred": values["pred"],
                            "expected": int(values[want]),
                            "config": {k: v for k, v in settings.items() if DEFAULTS[k] != v},
                        }
                    )
    return rows, skipped


def score(row: dict) -> tuple[int, str]:
    value, info = math_accuracy(f"<answer>{row['pred']}</answer>", {"answer": row["gold"]})
    return int(value), info.get("reason", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", type=Path, help="Math-Verify checkout or bare git dir")
    ap.add_argument("--show", type=int, default=2, help="examples printed per class")
    args = ap.parse_args(argv)
    rows, skipped = cases(read_tests(args.path))
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    agree = 0
    for row in rows:
        got, reason = score(row)
        if got == row["expected"]:
            agree += 1
            continue
        direction = "missed (r1lab 0, expected 1)" if got == 0 else "extra (r1lab 1, expected 0)"
        if row["config"]:
            reason = f"non-default setting {row['config']}"
        groups[(row["test"], direction, reason or "-")].append(row)
    print(f"agreement: {agree}/{len(rows)}" + (f" ({skipped} rows not read)" if skipped else ""))
    for (test, direction, reason), members in sorted(groups.items()):
        print(f"\n{len(members):3d}  {test}  {direction}  reason: {reason}")
        for row in members[: args.show]:
            print(f"       line {row['line']}: gold {row['gold'][:70]!r}")
            print(f"                 pred {row['pred'][-70:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
