import json

import pytest
import torch
from transformers import AutoTokenizer

from r1lab.microworld.probe import arithmetic_probe, probe_items, worked_item

BASE = "src/r1lab/assets/base"


def _digits(item, key):
    return "".join(item.text[at] for at, k in item.marks if k == key)


def test_an_addition_probes_each_columns_reads_and_fact_and_the_total_last_written_first():
    item = worked_item(458, "+", 67)
    assert item.text.endswith(
        "User: Compute 458 + 67. Assistant: <think> 8+7=15, write 5 carry 1. 5+6+1=12, "
        "write 2 carry 1. 4+0+1=5, write 5. So 458 + 67 = 525."
    )
    # The first column's first digit says whether the writer works in columns: not probed.
    assert _digits(item, "+ read") == "7" + "56" + "40"
    assert _digits(item, "+ fact") == "15" + "12" + "5"
    assert _digits(item, "+ total") == "525"


def test_a_multiplication_probes_the_multiplicands_digits_not_the_multiplier():
    item = worked_item(47, "*", 6)
    assert item.text.endswith(
        "<think> 7*6=42, write 2 carry 4. 4*6+4=28, write 28. So 47 * 6 = 282."
    )
    assert _digits(item, "* read") == "4"
    assert _digits(item, "* fact") == "42" + "28"
    assert _digits(item, "* total") == "282"


def test_probe_items_are_seeded_and_hold_both_operations():
    assert probe_items(5, seed=1) == probe_items(5, seed=1)
    assert probe_items(5, seed=1) != probe_items(5, seed=2)
    ops = [" + " in it.text.split("User:")[1] for it in probe_items(5)]
    assert ops.count(True) == ops.count(False) == 5


class _Oracle(torch.nn.Module):
    """Knows each text: puts `p` on the true next token, the rest spread evenly."""

    def __init__(self, vocab: int, p: float):
        super().__init__()
        self.vocab, self.p = vocab, p
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, input_ids, attention_mask):
        self.seen.append(attention_mask)
        probs = torch.full((*input_ids.shape, self.vocab), (1 - self.p) / (self.vocab - 1))
        nxt = torch.roll(input_ids, -1, dims=1)
        probs.scatter_(-1, nxt.unsqueeze(-1), self.p)
        return type("Out", (), {"logits": probs.log()})()


def test_the_probe_reports_the_probability_of_the_right_digit_per_operation_and_skill():
    tok = AutoTokenizer.from_pretrained(BASE)
    items = probe_items(3)
    model = _Oracle(len(tok), 0.8).train()
    result = arithmetic_probe(model, tok, items, batch_size=4)
    assert sorted(result) == [f"{op} {s}" for op in "*+" for s in ("fact", "read", "total")]
    assert all(v == pytest.approx(0.8, rel=1e-5) for v in result.values())  # float32 log-probs
    assert model.training  # the caller's mode is restored
    # Rows of different lengths are padded and masked, never scored on padding.
    assert any((m == 0).any() for m in model.seen)


def test_the_probe_tells_a_model_that_cannot_put_the_total_together():
    tok = AutoTokenizer.from_pretrained(BASE)
    items = probe_items(2)  # four rows, one batch: row i is items[i]
    totals = []  # (row, token index of a total digit)
    for row, it in enumerate(items):
        enc = tok(it.text, return_offsets_mapping=True, add_special_tokens=False)
        starts = {s: t for t, (s, e) in enumerate(enc["offset_mapping"])}
        totals += [(row, starts[at]) for at, k in it.marks if k.endswith("total")]

    class _NoTotals(_Oracle):
        def forward(self, input_ids, attention_mask):
            out = super().forward(input_ids, attention_mask)
            for row, t in totals:  # the positions that predict a total digit: flat
                out.logits[row, t - 1] = -torch.log(torch.tensor(float(self.vocab)))
            return out

    result = arithmetic_probe(_NoTotals(len(tok), 0.9), tok, items)
    flat, right = pytest.approx(1 / len(tok), rel=1e-5), pytest.approx(0.9, rel=1e-5)
    assert result["+ total"] == flat and result["* total"] == flat
    assert result["+ read"] == right and result["+ fact"] == right
    assert result["* read"] == right and result["* fact"] == right


def test_pretraining_logs_the_probe_and_probing_never_changes_the_weights(tmp_path, tiny_pretrain):
    from safetensors.torch import load_file

    from r1lab.cli import main

    assert (
        main(["pretrain", f"out={tmp_path / 'probed'}", "probe_every=2", "steps=4", *tiny_pretrain])
        == 0
    )
    assert (
        main(["pretrain", f"out={tmp_path / 'plain'}", "probe_every=0", "steps=4", *tiny_pretrain])
        == 0
    )
    probed = load_file(tmp_path / "probed" / "model.safetensors")
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    assert probed.keys() == plain.keys()
    assert all(torch.equal(probed[k], plain[k]) for k in probed)

    curve = [
        json.loads(line)
        for line in (tmp_path / "probed" / "loss.jsonl").read_text().split("\n")
        if line
    ]
    assert [c["step"] for c in curve if "probe/+ total" in c] == [0, 2, 3]  # every 2 and the last
    meta = json.loads((tmp_path / "probed" / "r1lab.json").read_text())
    assert meta["probe"] == {k[6:]: v for k, v in curve[-1].items() if k.startswith("probe/")}
    assert len(meta["probe"]) == 6
    from r1lab.microworld.probe import curve as probe_curve

    table = probe_curve(str(tmp_path / "probed"), every=2).splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| 0", "| 2", "| 3"]
    last = [float(v) for v in table[-1].strip("| ").split(" | ")]
    assert last[1] == pytest.approx(sum(c["loss"] for c in curve) / 4, abs=1e-3)  # 50-step mean
    assert last[2:] == pytest.approx(
        [meta["probe"][k] for k in ("+ read", "+ fact", "+ total", "* read", "* fact", "* total")],
        abs=1e-3,
    )
    plain_curve = (tmp_path / "plain" / "loss.jsonl").read_text()
    assert "probe/" not in plain_curve
    assert json.loads((tmp_path / "plain" / "r1lab.json").read_text())["probe"] == {}


def test_the_command_prints_a_row_of_six_probabilities_per_model(capsys):
    from r1lab.microworld.probe import main

    assert main([]) == 2
    assert main(["--curve"]) == 2
    assert main([BASE]) == 0
    row = capsys.readouterr().out.strip().split(" | ")
    assert row[0] == f"| {BASE}" and row[-1].endswith(" |")
    values = [float(v.strip(" |")) for v in row[1:]]
    assert len(values) == 6 and all(0.5 < v <= 1 for v in values)  # the shipped base can add
