import json

import pytest

from r1lab.config import ConfigError
from r1lab.plotting import PlotConfig, run, summary_table
from r1lab.tracking import MetricsLogger, read_metrics


def fake_run(path, pass1, length):
    log = MetricsLogger(path)
    for step in range(0, 41):
        row = {"reward/accuracy": step / 40, "reward/format_rate": 1.0, "policy/kl": 0.01}
        row["response/length_mean"] = 10 + step
        row["response/reflection_rate"] = 0.0
        row["reward/total"] = 1 + step / 40
        if step % 20 == 0:
            i = step // 20
            row |= {
                "eval/pass@1": pass1[i],
                "eval/format": 0.9,
                "eval/length_mean": length[i],
                "eval/reflection_rate": 0.1,
            }
        log.log(step, row)
    log.close()
    return path


def test_plot_one_run_and_compare_runs(tmp_path, capsys):
    a = fake_run(tmp_path / "grpo", [0.2, 0.55, 0.7], [20, 30, 40])
    b = fake_run(tmp_path / "dapo", [0.2, 0.4, 0.45], [20, 22, 25])
    assert run(PlotConfig(run_dir=str(a))) == 0
    assert (a / "plot.png").stat().st_size > 10_000
    assert run(PlotConfig(run_dir=f"{a},{b}", out=str(tmp_path / "cmp.png"))) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "| grpo | 20.0% | 70.0% | 90.0% | 20.0 | 40.0 | 10.0% | 20 |" in out
    assert "| dapo | 20.0% | 45.0% | 90.0% | 20.0 | 25.0 | 10.0% | - |" in out


def test_summary_table_of_a_run_without_evaluation():
    assert "| x | - |" in summary_table({"x": [{"step": 0, "reward/total": 1.0}]})


def test_missing_or_corrupt_run_directory(tmp_path):
    with pytest.raises(ConfigError, match="metrics.jsonl"):
        run(PlotConfig(run_dir=str(tmp_path / "nope")))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n{oops\n")
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)
    with pytest.raises(ConfigError):
        run(PlotConfig(run_dir=""))


def test_the_issue_11_series_get_their_own_labelled_lines(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = []
    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        labels.append((self.get_title(), kwargs.get("label")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    log = MetricsLogger(tmp_path)
    for step in (0, 10):
        row = {"eval/pass@1": 0.5, "eval/format": 1.0, "eval/length_mean": 9.0}
        row |= {"eval/reflection_rate": 0.1, "eval/self_correction_rate": 0.05}
        log.log(step, row | {"eval/mixed_language_rate": 0.02, "eval/readability": 0.9})
        log.log(step, {"eval/candidates": 2.0})
    log.close()
    assert run(PlotConfig(run_dir=str(tmp_path))) == 0
    # Panels are titled after the plot call, so check the labels in drawing order.
    drawn = [label for _, label in labels if label]
    for name in ("held-out self-correction", "held-out mixed language", "held-out readability"):
        assert name in drawn
    assert drawn.count("held-out") == 5  # pass@1, format, length, reflection, candidates


def test_a_panel_no_run_logged_is_left_out(tmp_path, monkeypatch):
    import matplotlib.axes

    titles = []
    real = matplotlib.axes.Axes.set_title

    def spy(self, label, *args, **kwargs):
        titles.append((label, self.get_visible()))
        return real(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy)
    a = fake_run(tmp_path / "arith", [0.2, 0.55, 0.7], [20, 30, 40])  # no eval/candidates
    assert run(PlotConfig(run_dir=str(a))) == 0
    assert "candidates tried (countdown)" not in [t for t, _ in titles]
    assert "accuracy" in [t for t, _ in titles] and all(visible for _, visible in titles)
    titles.clear()
    log = MetricsLogger(tmp_path / "cd")
    row = {"eval/pass@1": 0.1, "eval/format": 1.0, "eval/length_mean": 9.0}
    log.log(0, row | {"eval/reflection_rate": 0.0, "eval/candidates": 2.0})
    log.close()
    assert run(PlotConfig(run_dir=f"{a},{tmp_path / 'cd'}", out=str(tmp_path / "c.png"))) == 0
    assert "candidates tried (countdown)" in [t for t, _ in titles]


def test_a_reward_model_run_gets_its_own_panels(tmp_path, monkeypatch):
    import matplotlib.axes

    titles = []
    real = matplotlib.axes.Axes.set_title

    def spy(self, label, *args, **kwargs):
        titles.append(label)
        return real(self, label, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", spy)
    log = MetricsLogger(tmp_path)
    for step in range(3):
        log.log(step, {"loss/rm": 0.6, "rm/accuracy": 0.7, "rm/margin": 0.2, "policy/lr": 1e-4})
    log.log(3, {"eval/accuracy": 0.8, "eval/loss": 0.5, "eval/margin": 0.4})
    log.close()
    assert run(PlotConfig(run_dir=str(tmp_path))) == 0
    assert titles[:3] == ["pair accuracy", "loss (Bradley-Terry)", "margin r(chosen) - r(rejected)"]
    assert "accuracy" not in titles and "loss (completion tokens)" not in titles


def test_rl_for_all_scenarios_gets_the_hidden_rule_and_the_reward_models_panels(
    tmp_path, monkeypatch
):
    import matplotlib.axes

    drawn = []
    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append(kwargs.get("label"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    log = MetricsLogger(tmp_path)
    for step in (0, 10):
        log.log(step, {"reward/total": 0.5, "reward/rm_helpful": 0.1, "reward/rm_harmless": 0.2})
        held = {"eval/pass@1": 0.5, "eval/format": 1.0, "eval/length_mean": 9.0}
        held |= {"eval/reflection_rate": 0.1, "eval/general/helpful_rate": 0.3}
        log.log(step, held)
        log.log(step, {"eval/general/harmless_rate": 0.9, "eval/general/rm_helpful": 0.4})
    log.close()
    assert run(PlotConfig(run_dir=str(tmp_path))) == 0
    labels = [d for d in drawn if d]
    for name in ("held-out helpful", "held-out harmless (harmful requests)"):
        assert name in labels
    for name in ("train rm_helpful", "train rm_harmless", "held-out rm_helpful"):
        assert name in labels
