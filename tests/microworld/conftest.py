import pytest


@pytest.fixture
def tiny_pretrain() -> list[str]:
    """`r1lab pretrain` arguments for a model and corpus small enough for seconds of training."""
    return [
        "num_docs=40",
        "model.hidden_size=32",
        "model.num_layers=1",
        "model.num_heads=2",
        "model.num_kv_heads=1",
        "model.intermediate_size=32",
        "block_size=64",
        "batch_size=2",
    ]
