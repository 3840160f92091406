"""Tests of `r1lab sft` (a package: its module names must not clash with tests/rl's)."""
