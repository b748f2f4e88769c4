"""A training run reuses a tokenizer made by ``stop-slu tokenizer`` (``--tokenizer_from``):
its folder holds the same bytes, the output layer takes its size, the log says so;
one that lacks labels of the run's train split is refused in one line."""

from conftest import TINY, run_cli

from stop_slu import parses
from stop_slu.tokenizer.parse_tokenizer import ParseTokenizer, train_tokenizer
from stop_slu.tokenizer.stage import read_targets


def test_the_stage_commands_compose_with_their_defaults(mini_release, tmp_path):
    """prepare, tokenizer, then train with --tokenizer_from, as docs/walkthrough.md shows them."""
    prepared = tmp_path / "prepared"
    run_cli("prepare", mini_release, prepared, "--quiet")
    source = tmp_path / "tok"
    run_cli("tokenizer", prepared, source, "--vocab_size", 200)
    out = tmp_path / "run"
    run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--tokenizer_from={source}",
        "--number_of_epochs=1",
        *TINY,  # asks for vocab_size=1000: the reused tokenizer's 200 pieces win
    )
    for name in ("tokenizer.model", "tokenizer.json"):
        assert (out / "save" / "tokenizer" / name).read_bytes() == (source / name).read_bytes()
    size = ParseTokenizer(source).vocab_size
    assert size == 200
    assert f"output_neurons: {size}" in (out / "recipe_overrides.yaml").read_text()
    log = (out / "log.txt").read_text()
    assert f"Tokenizer: reused from {source} (tokenizer_from), {size} pieces" in log
    assert (out / "metrics_test.json").is_file()


def test_train_refuses_a_tokenizer_lacking_labels_in_one_line(mini_release, tmp_path):
    prepared = tmp_path / "prepared"
    run_cli("prepare", mini_release, prepared, "--target", "normalized_seqlogical", "--quiet")
    targets = read_targets(prepared)
    dropped = parses.root_intent(targets[0])
    source = tmp_path / "tok"
    train_tokenizer([t for t in targets if dropped not in t], source, vocab_size=200)
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "mini",
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--tokenizer_from={source}",
        *TINY,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {source}: not trained on this run's train split")
    assert dropped in last and "--tokenizer_mismatch_ok=True" in last
    assert not list((out / "save").glob("CKPT+*"))


def test_a_tokenizer_of_another_target_column_is_refused_naming_both(mini_release, tmp_path):
    prepared = tmp_path / "prepared"
    run_cli("prepare", mini_release, prepared, "--target", "decoupled_normalized_seqlogical", "--quiet")
    source = tmp_path / "tok"
    run_cli("tokenizer", prepared, source, "--vocab_size", 200)
    out = tmp_path / "run"
    result = run_cli(
        "train",
        "mini",  # trains on full parses: words outside slots the decoupled targets never hold
        f"--data_folder={mini_release}",
        f"--output_folder={out}",
        f"--tokenizer_from={source}",
        *TINY,
        check=False,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: {source}: trained on decoupled_normalized_seqlogical targets, "
        "and this config trains on normalized_seqlogical (target_column)"
    )
    assert f"`stop-slu prepare {mini_release} PREPARED --target normalized_seqlogical`" in last
    assert f"`stop-slu tokenizer PREPARED {source}`" in last
    assert not list((out / "save").glob("CKPT+*"))
