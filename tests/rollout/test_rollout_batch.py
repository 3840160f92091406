"""`collate`: the padded layout the trainer slices, checked on hand-made completions."""

from __future__ import annotations

import pytest
import torch

from r1lab.rollout import Completion, collate


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
