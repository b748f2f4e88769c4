"""EM and EM-Tree exactly as STOP_FORMAT.md defines them."""

import json

from stop_slu.recipe.stop_metrics import score

from conftest import run_cli

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
