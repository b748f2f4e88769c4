"""stop_slu.evaluate without a model: the partial files a killed evaluation
leaves, and where the data to evaluate is found."""

import pytest

from stop_slu.evaluate import EvaluateError, find_csv, read_rows


def test_partial_rows_read_back_a_line_cut_by_a_kill_is_dropped(tmp_path):
    (tmp_path / "rank0.tsv").write_text("a\t[IN:X ]\t[IN:X ]\talarm\nb\t[IN:Y ]\t[IN:Z ]\ttimer\nc\t[IN:")
    (tmp_path / "rank1.tsv").write_text("d\t[IN:X ]\t[IN:X ]\talarm\na\t[IN:X ]\t[IN:X ]\talarm\n")
    rows = read_rows(sorted(tmp_path.glob("rank*.tsv")))
    assert rows == {
        "a": ("[IN:X ]", "[IN:X ]", "alarm"),
        "b": ("[IN:Y ]", "[IN:Z ]", "timer"),
        "d": ("[IN:X ]", "[IN:X ]", "alarm"),
    }


def test_partial_rows_giving_an_id_two_parses_are_refused_naming_them(tmp_path):
    (tmp_path / "rank0.tsv").write_text("a\t[IN:X ]\tr\tx\nb\t[IN:X ]\tr\tx\n")
    (tmp_path / "rank1.tsv").write_text("a\t[IN:Y ]\tr\tx\nb\t[IN:X ]\tr\tx\n")
    with pytest.raises(EvaluateError, match=r"IDs decoded twice with different parses \(a\)") as error:
        read_rows(sorted(tmp_path.glob("rank*.tsv")))
    assert str(error.value).startswith(str(tmp_path)) and "\n" not in str(error.value)


def test_the_data_to_evaluate_is_found_or_refused_in_one_line(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("ID,duration\n")
    assert find_csv(csv, "test", tmp_path / "out", "decoupled_normalized_seqlogical") == csv
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "eval.csv").write_text("ID,duration\n")
    assert find_csv(prepared, "eval", tmp_path / "out", "x") == prepared / "eval.csv"
    (tmp_path / "notes.txt").write_text("x")
    cases = {
        tmp_path / "missing": "no such file or folder",
        prepared: "no test.csv here and not a STOP release; pass --split with one of eval",
        tmp_path / "notes.txt": "not a CSV",
    }
    for data, reason in cases.items():
        with pytest.raises(EvaluateError, match=reason) as error:
            find_csv(data, "test", tmp_path / "out", "x")
        assert str(error.value).startswith(str(data)) and "\n" not in str(error.value)
