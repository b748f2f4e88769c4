"""The tokenizer's vocabulary size: below what the training targets need, one
line with the smallest usable size, never SentencePiece's own error."""

import pytest
from conftest import run_cli

from stop_slu.tokenizer.parse_tokenizer import VocabSizeError, smallest_vocab_size, train_tokenizer

TARGETS = [
    "[IN:GET_WEATHER [SL:LOCATION paris ] ]",
    "[IN:CREATE_ALARM [SL:DATE_TIME for seven tomorrow ] ]",
    "[IN:GET_TIME [SL:LOCATION zürich ] ]",
    "[IN:SEND_MESSAGE [SL:RECIPIENT [IN:GET_CONTACT [SL:TYPE_RELATION mom ] ] ] [SL:CONTENT_EXACT hi 5 ] ]",
]


def test_the_smallest_usable_size_is_exact(tmp_path):
    smallest = smallest_vocab_size(TARGETS)
    assert train_tokenizer(TARGETS, tmp_path / "fits", smallest).vocab_size >= smallest
    with pytest.raises(VocabSizeError, match=f"pass --vocab_size={smallest} or more") as error:
        train_tokenizer(TARGETS, tmp_path / "short", smallest - 1)
    assert "\n" not in str(error.value)
    with pytest.raises(VocabSizeError, match=f"--vocab_size=10: .*{smallest}"):
        train_tokenizer(TARGETS, tmp_path / "short", 10)


@pytest.mark.slow  # a CLI subprocess (torch and SpeechBrain imported: seconds)
def test_train_says_it_in_one_line(mini_release, tmp_path):
    result = run_cli(
        "train", "mini", f"--data_folder={mini_release}", f"--output_folder={tmp_path}", "--vocab_size=40", check=False
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "--vocab_size=40: below the smallest usable size" in lines[0], result.stderr[-2000:]
