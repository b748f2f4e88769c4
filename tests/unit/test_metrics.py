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
