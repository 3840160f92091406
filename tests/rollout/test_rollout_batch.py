"""`collate`: the padded layout the trainer slices, checked on hand-made completions; and
`micro_batches`, how the trainer cuts it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rollout import Completion, collate
from r1lab.rollout.batch import micro_batches


def _c(prompt, tokens, p_index=0, reason="eos"):
    lps = [-0.5 * (i + 1) for i in range(len(tokens))]
    return Completion(p_index, prompt, tokens, "", lps, reason)


def test_collate_left_pads_prompts_and_right_pads_completions():
    batch = collate([_c([7, 8, 9], [11, 12]), _c([5], [13, 14, 15, 16], p_index=1)], pad_id=0)
    assert batch.prompt_len == 3
    assert batch.input_ids.tolist() == [[7, 8, 9, 11, 12, 0, 0], [0, 0, 5, 13, 14, 15, 16]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]]
    assert batch.position_ids[0, :5].tolist() == [0, 1, 2, 3, 4]
    assert batch.position_ids[1, 2:].tolist() == [0, 1, 2, 3, 4]
    assert batch.completion_ids.tolist() == [[11, 12, 0, 0], [13, 14, 15, 16]]
    assert batch.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch.old_logprobs.tolist() == [[-0.5, -1.0, 0, 0], [-0.5, -1.0, -1.5, -2.0]]
    assert batch.prompt_index.tolist() == [0, 1]
    # Column Lp + j holds completion token j: the slice the trainer scores.
    assert torch.equal(batch.input_ids[:, batch.prompt_len :], batch.completion_ids)


def test_collate_without_pad_id_and_empty_completion():
    batch = collate([_c([4], [], reason="length"), _c([4, 5], [6])], pad_id=None)
    assert batch.input_ids.tolist() == [[0, 4, 0], [4, 5, 6]]
    assert batch.completion_mask.tolist() == [[0], [1]]
    assert batch.to("cpu").prompt_len == 2
    with pytest.raises(ValueError, match="at least one"):
        collate([], pad_id=0)


def _cost(chunks, lengths, cut_cost):
    return sum(len(c) * max(int(lengths[c].max()), 1) + cut_cost for c in chunks)


def _best_by_brute_force(widths, max_rows, cut_cost):
    # Every split of the sorted rows into consecutive chunks of at most max_rows.
    n, best = len(widths), float("inf")
    for mask in range(1 << max(n - 1, 0)):
        cuts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1] + [n]
        sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        if max(sizes) <= max_rows:
            best = min(best, sum(sizes[k] * widths[cuts[k]] + cut_cost for k in range(len(sizes))))
    return best


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=9),
    st.integers(1, 4),
    st.integers(0, 50),
)
def test_micro_batches_cover_every_row_once_at_least_padding(lengths, max_rows, cut_cost):
    lengths = torch.tensor(lengths)
    chunks = micro_batches(lengths, max_rows, cut_cost)
    rows = torch.cat(chunks).tolist()
    assert sorted(rows) == list(range(len(lengths)))
    assert all(1 <= len(c) <= max_rows for c in chunks)
    widths = sorted((max(x, 1) for x in lengths.tolist()), reverse=True)
    assert _cost(chunks, lengths, cut_cost) == _best_by_brute_force(widths, max_rows, cut_cost)


def test_micro_batches_isolate_a_long_outlier_and_a_huge_cut_cost_gives_plain_chunks():
    lengths = torch.tensor([128] + [70] * 63)
    cut = micro_batches(lengths, 32, 64)
    assert [len(c) for c in cut][0] == 1 and int(lengths[cut[0]].max()) == 128
    plain = micro_batches(lengths, 32, 10**9)
    assert [len(c) for c in plain] == [32, 32]
    assert plain[0].tolist()[0] == 0  # the longest first
