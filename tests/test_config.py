"""Configuration layers: dataclass defaults < YAML file < flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from training import ppo, sft
from training.config import ConfigError, lay_over, layered


@dataclass(frozen=True)
class Inner:
    width: int = 16
    heads: int = 1


@dataclass(frozen=True)
class Outer:
    lr: float = 0.001
    kinds: tuple[str, ...] = ("one-belt",)
    init: Path | None = None
    inner: Inner = field(default_factory=Inner)


def test_flags_beat_the_file_which_beats_the_defaults(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 0.5\nkinds: [split, merge]\ninit: runs/x/best.pt\ninner: {width: 8}\n")
    config = layered(Outer, ["--config", str(recipe), "--inner.heads", "4", "--lr", "0.25"], "prog", "test")
    assert config.lr == 0.25  # flag over file
    assert config.kinds == ("split", "merge") and config.init == Path("runs/x/best.pt")  # file over defaults
    assert config.inner == Inner(width=8, heads=4)  # nested: file and flag each set one field
    assert layered(Outer, [], "prog", "test") == Outer()  # nothing given: the defaults


def test_a_base_layer_sits_under_the_file() -> None:
    base = lay_over(Outer(), {"lr": 0.3, "inner": {"heads": 2}}, "saved.yaml")
    assert layered(Outer, ["--lr", "0.1"], "prog", "test", base=base) == Outer(lr=0.1, inner=Inner(heads=2))


def test_bad_files_are_named(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.5\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml: unknown field 'learning_rate'"):
        layered(Outer, ["--config", str(recipe)], "prog", "test")
    recipe.write_text("inner: {depth: 3}\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml\.inner: unknown field 'depth'"):
        layered(Outer, ["--config", str(recipe)], "prog", "test")
    recipe.write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="holds a mapping"):
        layered(Outer, ["--config", str(recipe)], "prog", "test")
    recipe.write_text("lr: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read it as YAML"):
        layered(Outer, ["--config", str(recipe)], "prog", "test")


def test_trainers_refuse_bad_sizes_and_kinds_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for program in (ppo, sft):
        assert program.main(["--root", str(tmp_path), "--name", "x", "--size", "40"]) == 2
        assert "size must be 8 to 32 tiles a side, not 40" in capsys.readouterr().err
        assert program.main(["--root", str(tmp_path), "--name", "x", "--kinds", "spaghetti"]) == 2
        assert "unknown lesson kinds ['spaghetti']" in capsys.readouterr().err
    assert ppo.main(["--root", str(tmp_path), "--name", "x", "--eval-seeds", "1001"]) == 2
    assert sft.main(["--root", str(tmp_path), "--name", "x", "--val-seeds", "1001"]) == 2
    assert capsys.readouterr().err.count("validation takes 1 to 1000 seeds per kind, not 1001") == 2
    assert not any(tmp_path.iterdir())


RECIPE = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("path", sorted(RECIPE.glob("*.yaml")), ids=lambda p: p.name)
def test_the_recipes_config_files_parse_for_their_trainer(path: Path) -> None:
    parse = ppo.parse_config if path.name.startswith("ppo") else sft.parse_config
    config = parse(["--config", str(path)])
    assert config.kinds  # every field named in the file is one the trainer knows
