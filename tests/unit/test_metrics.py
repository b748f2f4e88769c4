"""EM and EM-Tree as the STOP literature computes them (STOP paper, Tomasello et
al. 2022; ESPnet's and fairseq's scoring): whitespace tokens after case folding,
labels and brackets as tokens."""

import json

from conftest import run_cli

from stop_slu.metrics import score

REF = {
    "test_0-alarm-00000001": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] ]",
    "test_0-weather-00000001": "[IN:GET_WEATHER [SL:LOCATION paris ] ]",
    "test_1-weather-00000001": "[IN:GET_WEATHER [SL:LOCATION paris ] ]",
    "test_1-alarm-00000002": "[IN:GET_ALARM ]",
}


def test_exact_match_tree_match_and_validity():
    hyp = {
        "test_0-alarm-00000001": "[in:create_alarm [SL:DATE_TIME For Seven ]]",  # case + spacing: right
        "test_0-weather-00000001": "[IN:GET_WEATHER [SL:LOCATION london ] ]",  # tree right, text wrong
        "test_1-weather-00000001": "[IN:GET_WEATHER [SL:LOCATION paris ]",  # one bracket short
        # test_1-alarm-00000002 missing: wrong
    }
    result = score(REF, hyp)
    assert result["n"] == 4
    assert result["em"] == 25.0
    assert result["em_tree"] == 50.0
    assert result["valid"] == 50.0
    assert result["intent_acc"] == 75.0  # the missing hypothesis has no intent
    # slots: 3 in the references; 2 in readable hypotheses (the malformed one has none), 1 right
    assert (result["slot_precision"], result["slot_recall"]) == (50.0, 33.33)
    assert result["slot_f1"] == 40.0
    assert result["per_domain"]["alarm"] == {"em": 50.0, "em_tree": 50.0, "n": 2}
    assert result["per_domain"]["weather"] == {"em": 0.0, "em_tree": 50.0, "n": 2}


def test_empty_hypothesis_is_wrong_even_for_empty_reference_text():
    assert score({"a": "[IN:GET_ALARM ]"}, {"a": ""})["em"] == 0.0
    assert score({"a": "[IN:GET_ALARM ]"}, {"a": "[IN:GET_ALARM ]"})["em"] == 100.0


def test_score_cli(tmp_path):
    ref, hyp = tmp_path / "ref.tsv", tmp_path / "hyp.tsv"
    ref.write_text("".join(f"{k}\t{v}\n" for k, v in REF.items()))
    hyp.write_text("test_0-alarm-00000001\t[IN:CREATE_ALARM [SL:DATE_TIME for seven ] ]\ntest_1-alarm-00000002\t\n")
    result = json.loads(run_cli("score", ref, hyp).stdout)
    assert (result["em"], result["n"]) == (25.0, 4)
    missing = run_cli("score", ref, tmp_path / "none.tsv", check=False)
    assert missing.returncode != 0 and "none.tsv" in missing.stderr and "Traceback" not in missing.stderr


def test_every_wrong_hypothesis_gets_one_error_class():
    from stop_slu.metrics import ERROR_CLASSES, error_class

    ref = "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] [SL:ALARM_NAME gym ] ]"
    cases = {
        "malformed": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ]",
        "wrong_intent": "[IN:GET_ALARM [SL:DATE_TIME for seven ] [SL:ALARM_NAME gym ] ]",
        "missing_slot": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] ]",
        "extra_slot": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] [SL:ALARM_NAME gym ] [SL:PERIOD daily ] ]",
        "wrong_slot_label": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] [SL:PERIOD gym ] ]",
        "wrong_nesting": "[IN:CREATE_ALARM [SL:DATE_TIME [IN:GET_TIME for seven ] ] [SL:ALARM_NAME gym ] ]",
        "wrong_slot_text": "[IN:CREATE_ALARM [SL:DATE_TIME for eight ] [SL:ALARM_NAME gym ] ]",
    }
    assert set(cases) == set(ERROR_CLASSES)
    for expected, hyp in cases.items():
        assert error_class(ref, hyp) == expected, hyp

    refs = {f"test_0-alarm-{i:08d}": ref for i in range(len(cases) + 1)}
    hyps = {f"test_0-alarm-{i:08d}": hyp for i, hyp in enumerate(cases.values())}
    hyps[f"test_0-alarm-{len(cases):08d}"] = ref  # one right
    errors = score(refs, hyps)["errors"]
    assert {k: v["count"] for k, v in errors.items()} == dict.fromkeys(ERROR_CLASSES, 1)
    assert all(abs(v["share"] - 100 / 7) < 0.01 for v in errors.values())  # share of the 7 wrong ones


def test_confusions_pair_reference_and_hypothesis_labels():
    from stop_slu.metrics import confusions

    refs = {
        "a": "[IN:CREATE_ALARM [SL:DATE_TIME for seven ] ]",
        "b": "[IN:GET_WEATHER [SL:LOCATION paris ] ]",
        "c": "[IN:GET_WEATHER ]",
    }
    hyps = {
        "a": "[IN:GET_ALARM [SL:DATE_TIME for seven ] ]",
        "b": "[IN:GET_WEATHER [SL:DATE_TIME paris ] ]",
        "c": "[IN:GET_WEATHER [SL:LOCATION here ] ]",
    }
    assert confusions(refs, hyps) == {
        ("IN:CREATE_ALARM", "IN:GET_ALARM"): 1,
        ("SL:LOCATION", "SL:DATE_TIME"): 1,
        ("(none)", "SL:LOCATION"): 1,
    }


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


REF_TSV = "".join(f"{k}\t{v}\n" for k, v in REF.items())


def test_score_files_with_a_byte_order_mark_or_a_header_read_right(tmp_path):
    from stop_slu.metrics import read_parse_tsv

    assert read_parse_tsv(_write(tmp_path / "bom.tsv", REF_TSV, "utf-8-sig"), "hypothesis") == REF
    assert read_parse_tsv(_write(tmp_path / "header.tsv", "ID\tparse\n" + REF_TSV), "reference") == REF
    assert (
        read_parse_tsv(_write(tmp_path / "bom_header.tsv", "id\tparse\n" + REF_TSV, "utf-8-sig"), "hypothesis") == REF
    )
    # the recipe's own predictions_test.tsv: each side takes its column
    rows = "".join(f"{k}\t[IN:WRONG ]\t{v}\tweather\n" for k, v in REF.items())
    predictions = _write(tmp_path / "predictions_test.tsv", "ID\thypothesis\treference\tdomain\n" + rows)
    assert read_parse_tsv(predictions, "reference") == REF
    assert set(read_parse_tsv(predictions, "hypothesis").values()) == {"[IN:WRONG ]"}


def test_unreadable_score_files_are_refused_in_one_line(tmp_path):
    import pytest

    from stop_slu.metrics import read_parse_tsv

    cases = {
        "spaces.tsv": ("".join(f"{k} {v}\n" for k, v in REF.items()), "utf-8", "no tab"),
        "latin1.tsv": ("a\t[IN:GET_WEATHER [SL:LOCATION münchen ] ]\n", "latin-1", "UTF-8"),
        "empty.tsv": ("\n\n", "utf-8", "no ID<TAB>parse lines"),
        "twice.tsv": (
            "a\t[IN:GET_ALARM ]\nb\t[IN:GET_TIMER ]\nc\t[IN:X ]\na\t[IN:SET_ALARM ]\nb\t[IN:GET_TIMER ]\nc\t[IN:Y ]\n",
            "utf-8",
            r"2 ID\(s\) appear twice with different parses: 'a' \(lines 1, 4\), 'c' \(lines 3, 6\);",
        ),
        "columns.tsv": ("ID\tfoo\tbar\na\tx\ty\n", "utf-8", "no parse column"),
    }
    for name, (text, encoding, reason) in cases.items():
        with pytest.raises(ValueError, match=reason) as error:
            read_parse_tsv(_write(tmp_path / name, text, encoding), "hypothesis")
        assert str(error.value).startswith(str(tmp_path / name)) and "\n" not in str(error.value)


def test_an_id_repeated_with_the_same_parse_is_read_once_with_a_warning(tmp_path, caplog):
    from stop_slu.metrics import read_parse_tsv

    text = "a\t[IN:GET_ALARM ]\nb\t[IN:GET_TIMER ]\na\t[in:get_alarm ]\n"
    with caplog.at_level("WARNING"):
        assert read_parse_tsv(_write(tmp_path / "again.tsv", text), "hypothesis") == {
            "a": "[IN:GET_ALARM ]",
            "b": "[IN:GET_TIMER ]",
        }
    assert "1 ID(s) appear more than once with the same parse, scored once: a" in caplog.text


def test_score_counts_ids_on_one_side_only():
    result = score(REF, {"test_0-alarm-00000001": REF["test_0-alarm-00000001"], "other": "[IN:GET_ALARM ]"})
    assert (result["n"], result["ref_without_hyp"], result["hyp_not_in_ref"]) == (4, 3, 1)


def test_score_cli_reads_bom_and_header_and_warns_when_few_ids_match(tmp_path):
    ref = _write(tmp_path / "ref.tsv", REF_TSV)
    for hyp_text, encoding in ((REF_TSV, "utf-8-sig"), ("ID\tparse\n" + REF_TSV, "utf-8")):
        result = run_cli("score", ref, _write(tmp_path / "hyp.tsv", hyp_text, encoding))
        assert (json.loads(result.stdout)["em"], json.loads(result.stdout)["ref_without_hyp"]) == (100.0, 0)
        assert "WARNING" not in result.stderr

    few = _write(tmp_path / "few.tsv", "test_1-alarm-00000002\t[IN:GET_ALARM ]\nx-1\t[IN:GET_ALARM ]\n")
    result = run_cli("score", ref, few)
    assert json.loads(result.stdout)["hyp_not_in_ref"] == 1
    assert "WARNING: only 1 of the 4 reference IDs have a hypothesis" in result.stderr

    none = _write(tmp_path / "none.tsv", "x-1\t[IN:GET_ALARM ]\n")
    result = run_cli("score", ref, none, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: ") and "no hypothesis ID" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
