"""`python -m r1lab ...` (and `torchrun -m r1lab ...`): the same as the `r1lab` command."""

from r1lab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
