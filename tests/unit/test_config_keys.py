"""The options the README, the recipe README and the user docs (docs/*.md) name
as recipe overrides (``--key=``) are keys of every config, or of the configs
that docs/training-at-scale.md's "Options per config" table names: the override
check refuses a key a config lacks, so a config that drifted from the others
would refuse an option the docs promise."""

import dataclasses
import re

import pytest
import ruamel.yaml
from conftest import REPO
from speechbrain.core import RunOptions
from torch.distributed.run import get_args_parser

TABLE_PAGE = REPO / "docs" / "training-at-scale.md"  # the home of the "Options per config" table
DOCS = (REPO / "README.md", REPO / "recipes" / "STOP" / "README.md", *sorted((REPO / "docs").glob("*.md")))
CONFIGS = {
    path.stem: set(ruamel.yaml.YAML().load(path.read_text(encoding="utf-8")))
    for path in sorted((REPO / "hparams").glob("*.yaml"))
    if path.stem != "finetune"  # overrides on top of a trained model's config, not a config
}
NOT_YAML_KEYS = {field.name for field in dataclasses.fields(RunOptions)} | {  # SpeechBrain's run options
    option.lstrip("-").replace("-", "_") for action in get_args_parser()._actions for option in action.option_strings
}  # and torchrun's


# docs/reference.md's placeholder (--key=value) and its example of a misspelt override the check refuses
NOT_OPTIONS = {"key", "number_of_epoch"}


def promised_options() -> set[str]:
    """Every ``--key=`` the pages name, but SpeechBrain's run options and torchrun's."""
    named = set()
    for page in DOCS:
        named |= set(re.findall(r"--(\w+)=", page.read_text(encoding="utf-8")))
    return named - NOT_YAML_KEYS - NOT_OPTIONS


def per_config_table() -> dict[str, set[str]]:
    """The "Options per config" table: {option: the configs that take it}."""
    text = TABLE_PAGE.read_text(encoding="utf-8").split("## Options per config", 1)[1].split("\n## ", 1)[0]
    table = {}
    for options, configs in re.findall(r"^\| (`--\w+`(?:, `--\w+`)*) \| ([^|]+) \|", text, flags=re.M):
        for option in re.findall(r"--(\w+)", options):
            table[option] = {name.strip() for name in configs.split(",")}
    return table


def test_the_docs_name_the_options_of_the_issue():
    assert {"tokenizer_from", "tokenizer_mismatch_ok", "force_prep", "data_url", "flat_only"} <= promised_options()
    assert {"waveform_augment", "noise_csv", "prepare_folder", "skip_prep"} <= promised_options()
    assert "precision" not in promised_options() and "nproc_per_node" not in promised_options()


def test_the_per_config_table_names_real_configs_and_documented_options():
    table = per_config_table()
    assert table, "docs/training-at-scale.md has no Options per config table"
    for option, configs in table.items():
        assert configs <= set(CONFIGS), f"--{option}: the table names unknown configs {configs - set(CONFIGS)}"
        assert option in promised_options(), f"--{option}: in the table but named nowhere else in the docs"


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_config_takes_the_options_the_docs_promise_it(config):
    table = per_config_table()
    expected = {option for option in promised_options() if config in table.get(option, CONFIGS)}
    missing = sorted(expected - CONFIGS[config])
    assert not missing, f"hparams/{config}.yaml lacks {missing}, which the docs promise every config (or this one)"
