import pytest

from stop_slu import parses

NESTED = (
    "[IN:GET_DIRECTIONS how do i get to [SL:DESTINATION [IN:GET_EVENT the "
    "[SL:NAME_EVENT eagles ] [SL:CAT_EVENT game ] ] ] ]"
)


def test_tokenize_tolerates_missing_spaces_and_case():
    assert parses.tokenize("[in:get_alarm [SL:DATE_TIME for six ]][SL:X y]]") == [
        "[IN:GET_ALARM",
        "[SL:DATE_TIME",
        "for",
        "six",
        "]",
        "]",
        "[SL:X",
        "y",
        "]",
        "]",
    ]


def test_canonical_folds_case_and_spacing():
    assert parses.canonical("[IN:A  [sl:b Paris]]") == "[IN:A [SL:B paris ] ]"


def test_skeleton_drops_slot_text():
    assert parses.skeleton(NESTED) == (
        "[IN:GET_DIRECTIONS [SL:DESTINATION [IN:GET_EVENT [SL:NAME_EVENT ] [SL:CAT_EVENT ] ] ] ]"
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("[SL:A x ]", "must open with an intent"),
        ("[IN:A [SL:B x ]", "left open"),
        ("[IN:A ] ]", "after the root"),
        ("[IN:A ] [IN:B ]", "after the root"),
        ("[IN:A [IN:B ] ]", "cannot sit directly inside"),
        ("[IN:A [SL:B [SL:C x ] ] ]", "cannot sit directly inside"),
    ],
)
def test_malformed_parses_are_rejected_with_reason(text, reason):
    assert not parses.is_valid(text)
    with pytest.raises(parses.ParseError, match=reason):
        parses.parse_tree(text)


def test_valid_parses():
    assert parses.is_valid("[IN:GET_ALARM ]")
    # An empty slot, as TOPv2 and STOP annotate a reminder that names no person.
    empty = "[IN:CREATE_REMINDER [SL:PERSON_REMINDED ] [SL:TODO call mom ] ]"
    assert parses.is_valid(empty) and parses.empty_slots(empty) == {"[SL:PERSON_REMINDED"}
    assert parses.decouple(empty) == empty and parses.slots(empty)[0] == ("SL:PERSON_REMINDED", "")
    assert parses.empty_slots(NESTED) == set()
    assert parses.is_valid(NESTED)
    assert parses.parse_tree(NESTED).depth() == 2


def test_decouple_keeps_only_slot_words():
    assert parses.decouple(NESTED) == (
        "[IN:GET_DIRECTIONS [SL:DESTINATION [IN:GET_EVENT [SL:NAME_EVENT eagles ] [SL:CAT_EVENT game ] ] ] ]"
    )
    assert parses.decouple("[IN:CREATE_ALARM set an alarm [SL:DATE_TIME for six ] ]") == (
        "[IN:CREATE_ALARM [SL:DATE_TIME for six ] ]"
    )


def test_slots_at_every_depth_and_root_intent():
    assert parses.root_intent(NESTED) == "IN:GET_DIRECTIONS"
    assert parses.slots(NESTED) == [
        ("SL:DESTINATION", "the eagles game"),
        ("SL:NAME_EVENT", "eagles"),
        ("SL:CAT_EVENT", "game"),
    ]
    assert parses.slots("[IN:A [SL:B x ]") == []


def test_normalize_text_spells_numbers_and_drops_punctuation():
    assert parses.normalize_text("Wake me at 7:30am on the 21st, please!") == (
        "wake me at seven thirty a m on the twenty first please"
    )
    assert parses.normalize_text("It's 100% at 5:00") == "it's one hundred percent at five o'clock"


def test_normalize_parse_keeps_structure():
    assert parses.normalize_parse("[IN:CREATE_ALARM Set [SL:DATE_TIME for 7am ] . ]") == (
        "[IN:CREATE_ALARM set [SL:DATE_TIME for seven a m ] ]"
    )


def test_tree_view_is_indented():
    view = parses.tree_view(NESTED).splitlines()
    assert view[0].startswith("IN:GET_DIRECTIONS")
    assert view[2].startswith("    IN:GET_EVENT")


def test_check_is_parse_tree_canonical_and_empty_slots_in_one_pass():
    from stop_slu.data_prep.grammar import generate

    texts = [e.seqlogical for e in generate(300, seed=11)]
    texts += [parses.decouple(t) for t in texts[:50]]
    texts += ["[in:get_weather [sl:location Paris]]", "[IN:A [SL:B ] ]", "[IN:A [SL:B [IN:C ] ] ]"]
    broken = ["", "word [IN:A ]", "] [IN:A ]", "[SL:A x ]", "[IN:A [SL:B x ]", "[IN:A ] ]", "[IN:A ] [IN:B ]"]
    broken += ["[IN:A [IN:B ] ]", "[IN:A [SL:B [SL:C x ] ] ]", "[IN:A x ] y"]
    broken += [t[: len(t) // 2] for t in texts[:50]] + [t.replace("]", "", 1) for t in texts[:50]]
    for text in texts + broken:
        try:
            parses.parse_tree(text)
        except parses.ParseError as expected:
            with pytest.raises(parses.ParseError) as error:
                parses.check(text)
            assert str(error.value) == str(expected), text
        else:
            canonical = parses.canonical(text)
            assert parses.check(text) == (canonical, parses.empty_slots(canonical)), text
