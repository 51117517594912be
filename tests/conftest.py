import os

import pytest

# Tests never use the network: any accidental hub access fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def train_with_stage(tmp_path):
    """``medner train -c CONFIG`` of a tiny encoder whose config adds one stage table (the
    TOML text ``stage``); returns the model folder. The chain tests of each stage share it."""
    from typer.testing import CliRunner

    from medner.cli import app

    def run(data, base, *, max_steps: int, stage: str):
        config = tmp_path / "chain.toml"
        config.write_text(f'[train]\nmax_steps = {max_steps}\nbatch_size = 2\nmax_length = 32\n'
                          f'predict_max_length = 32\nstride = 4\nbf16 = false\npatience = 0\n'
                          f'{stage}', encoding="utf-8")
        out = tmp_path / "model"
        result = CliRunner().invoke(app, ["train", "-c", str(config), "--train", str(data),
                                          "--dev", str(data), "--base-model", str(base),
                                          "--out", str(out)])
        assert result.exit_code == 0, result.output + repr(result.exception)
        return out

    return run
