"""A built-in text grammar for mini-STOP: utterances with their STOP parses.

The grammar writes templates directly in the parse notation, so a template is
at once the text and its tree::

    "set an alarm [SL:DATE_TIME <alarm_time> ]"

* ``[SL:X`` / ``[IN:X`` ... ``]`` are parse nodes (real TOPv2 labels, used
  under the same parents and in the same domains as in TOPv2);
* ``<name>`` expands one alternative of the symbol ``name`` (``SYMBOLS``); an
  alternative may itself hold slots and intents, which is how nested parses
  such as ``[SL:DESTINATION [IN:GET_EVENT ... ] ]`` arise;
* ``(a b|c|)`` picks one of its ``|``-separated alternatives (empty allowed);
* anything else is a word.

A top-level template (``INTENTS``) is wrapped in ``[IN:<intent> ... ]``.
Words are lower case ``a-z`` and apostrophes; numbers are spelled out, as in
STOP's normalised text, so eSpeak reads exactly what the parse says. The
utterance is the parse's words, plus a ``?`` (not in the parse, as in TOPv2)
after questions.

``generate(n, seed)`` samples domain (uniform), intent (weighted), template
(uniform) and every choice inside with one ``random.Random(seed)``; a
duplicate utterance is redrawn within the same domain, so domains stay
balanced. ``stats()`` enumerates the
grammar to describe its coverage.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Example:
    domain: str  # alarm event messaging music navigation reminder timer weather
    utterance: str  # raw text (may end with '?')
    seqlogical: str  # TOPv2-style parse holding every word of the utterance


# ----------------------------------------------------------------------------
# Numbers in words

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve "
    "thirteen fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD_ONES = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()


def spell(n: int) -> str:
    """Cardinal 0..999 in words."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    head = _ONES[n // 100] + " hundred"
    return head if n % 100 == 0 else head + " " + spell(n % 100)


def spell_ordinal(n: int) -> str:
    """Ordinal 1..99 in words."""
    if n < 20:
        return _ORD_ONES[n]
    if n % 10 == 0:
        return _TENS[n // 10][:-1] + "ieth"
    return _TENS[n // 10] + " " + _ORD_ONES[n % 10]


# ----------------------------------------------------------------------------
# Symbols: name -> alternatives. An alternative is a template fragment.

SYMBOLS: dict[str, list[str]] = {
    # --- fillers -----------------------------------------------------------
    "pls": ["", "", "", "", "please", "hey", "can you", "could you", "can you please",
            "hey can you", "would you", "i need you to", "i want you to", "go ahead and"],
    "end": ["", "", "", "", "", "please", "for me", "thanks", "thank you"],
    "ask": ["", "", "", "", "hey", "tell me", "can you tell me", "do you know", "i want to know",
            "i'd like to know", "let me know"],
    "want": ["i want to", "i'd like to", "i need to", "let me", "i wanna"],

    # --- numbers -----------------------------------------------------------
    "hour": [spell(h) for h in range(1, 13)],
    "minute": ["o'clock", "oh five", "ten", "fifteen", "twenty", "twenty five", "thirty",
               "thirty five", "forty", "forty five", "fifty", "fifty five"],
    "ampm": ["a m", "p m", "a m", "p m", "in the morning", "in the afternoon", "in the evening",
             "at night"],
    "n_small": [spell(k) for k in range(2, 13)],
    "n_min": [spell(k) for k in range(2, 60)],
    "n_sec": [spell(k) for k in (5, 10, 15, 20, 25, 30, 40, 45, 50, 90)],
    "ordinal_day": [spell_ordinal(k) for k in range(1, 32)],
    "freq_mhz": [spell(k) for k in range(88, 108)],
    "digit": [spell(k) for k in range(0, 10)],

    # --- time expressions (slot texts) --------------------------------------
    "clock": ["<hour> <minute> <ampm>", "<hour> <ampm>", "<hour> <minute> <ampm>", "<hour> <minute>",
              "noon", "midnight", "half past <hour>", "quarter past <hour>", "quarter to <hour>"],
    "weekday": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    "weekdays": ["mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays"],
    "month": ["january", "february", "march", "april", "may", "june", "july", "august",
              "september", "october", "november", "december"],
    "part_of_day": ["morning", "afternoon", "evening", "night"],
    "day_only": ["today", "tomorrow", "the day after tomorrow", "on <weekday>", "this <weekday>",
                 "next <weekday>"],
    "day_rel": ["today", "tomorrow", "tonight", "this morning", "this afternoon", "this evening",
                "tomorrow morning", "tomorrow afternoon", "tomorrow evening", "tomorrow night",
                "the day after tomorrow", "this weekend", "next weekend"],
    "day": ["<day_rel>", "<day_rel>", "on <weekday>", "next <weekday>", "this <weekday>",
            "<weekday> <part_of_day>", "on <month> <ordinal_day>", "on the <ordinal_day> of <month>",
            "on the <ordinal_day>"],
    "when": ["<day>", "<day>", "at <clock>", "<day> at <clock>", "at <clock> <day_only>",
             "at <clock> on <weekday>", "in <n_small> hours", "in <n_min> minutes"],
    "new_when": ["<day_rel>", "<weekday>", "next <weekday>", "<clock>", "<weekday> at <clock>",
                 "<month> <ordinal_day>", "tomorrow at <clock>", "<clock> <day_only>", "the <ordinal_day>"],
    "past_span": ["today", "yesterday", "this morning", "last night", "last <weekday>", "on <weekday>",
                  "this week", "last week", "earlier today", "<weekday> <part_of_day>", "an hour ago"],
    "span": ["<day_rel>", "this week", "next week", "this month", "next month", "in <month>",
             "on <weekday>", "this <weekday>", "next <weekday>", "on <month> <ordinal_day>",
             "<weekday> <part_of_day>", "tonight", "this weekend", "over the weekend"],
    "alarm_time": ["for <clock>", "for <clock> <day_only>", "at <clock>", "at <clock> <day_only>",
                   "for <clock> on <weekday>", "for <day_only> at <clock>", "at <clock> on <month> <ordinal_day>",
                   "for <weekday> at <clock>", "for <clock> next <weekday>"],
    "alarm_when": ["for <clock>", "at <clock>", "for <day_rel>", "on <weekday>", "for <weekday>",
                   "for <clock> <day_only>", "at <clock> on <weekday>"],
    "alarm_recurring": ["every <weekday> at <clock>", "for <clock> every day", "for <clock> on weekdays",
                        "every morning at <clock>", "at <clock> daily", "for <clock> every <weekday>",
                        "every weekend at <clock>", "on <weekdays> at <clock>", "at <clock> every night"],
    "alarm_period": ["every <n_min> minutes", "every hour", "every <n_small> hours", "every half hour",
                     "every other day", "every fifteen minutes"],
    "alarm_duration": ["for the next <n_small> hours", "for <n_small> days", "for <n_small> weeks",
                       "for the next hour", "for the rest of the week"],
    "length": ["<n_min> minutes", "<n_min> minutes", "<n_sec> seconds", "<n_small> hours", "one minute",
               "an hour", "half an hour", "an hour and a half", "<n_small> hours and <n_min> minutes",
               "one hour and <n_min> minutes", "<n_min> minutes and <n_sec> seconds"],
    "length_short": ["<n_min> minutes", "<n_sec> seconds", "one minute", "five more minutes",
                     "<n_small> more minutes", "an hour", "half an hour"],
    "snooze_length": ["<n_small> minutes", "<n_small> more minutes", "another <n_small> minutes",
                      "ten minutes", "fifteen minutes", "half an hour"],
    "minute_label": ["<n_min> minute", "<n_small> hour", "<n_sec> second", "one minute", "one hour"],
    "weather_when": ["<day_rel>", "<day_rel>", "right now", "on <weekday>", "this <weekday>",
                     "<weekday> <part_of_day>", "next week", "this week", "for the next <n_small> days",
                     "at <clock>", "over the weekend", "later today", "on <month> <ordinal_day>"],
    "travel_when": ["now", "right now", "at <clock>", "<day_only> at <clock>", "in <n_min> minutes",
                    "<day_rel>", "on <weekday> at <clock>", "after work", "during rush hour"],
    "arrive_by": ["by <clock>", "by <clock> <day_only>", "before <clock>", "at <clock>", "by noon",
                  "on time"],

    # --- people ------------------------------------------------------------
    "name": ["emma", "olivia", "liam", "noah", "sophia", "james", "mia", "lucas", "ava", "ethan",
             "isabella", "mason", "amelia", "logan", "harper", "jacob", "ella", "daniel", "grace",
             "henry", "chloe", "jack", "lily", "owen", "zoe", "samuel", "nora", "david", "hannah",
             "sarah", "michael", "jessica", "rachel", "peter", "laura", "kevin", "maria", "carlos",
             "linda", "robert", "susan", "thomas", "karen", "brian", "nancy", "george", "helen",
             "frank", "alice", "oscar", "ruby", "felix", "rosa", "victor", "julia", "simon", "tina",
             "martin", "anna", "paul", "diana", "steve", "megan", "andrew", "kate", "justin"],
    "surname": ["smith", "johnson", "brown", "garcia", "miller", "davis", "wilson", "taylor",
                "anderson", "thomas", "moore", "martin", "walker", "young", "king", "wright",
                "hill", "green", "baker", "nelson", "carter", "mitchell", "turner", "parker"],
    "relation": ["mom", "dad", "mother", "father", "sister", "brother", "wife", "husband", "son",
                 "daughter", "grandma", "grandpa", "aunt", "uncle", "cousin", "boss", "best friend",
                 "roommate", "girlfriend", "boyfriend", "neighbor", "niece", "nephew", "coach",
                 "teacher", "doctor", "babysitter", "stepmom", "stepdad", "partner"],
    "relations": ["kids", "parents", "friends", "coworkers", "cousins", "grandparents", "sisters",
                  "brothers", "neighbors", "classmates", "teammates", "children"],
    "person": ["<name>", "<name>", "<name> <surname>"],
    "name_poss": ["emma's", "liam's", "noah's", "sophia's", "james's", "mia's", "lucas's", "ava's",
                  "ethan's", "grace's", "henry's", "chloe's", "jack's", "lily's", "owen's", "zoe's",
                  "david's", "hannah's", "sarah's", "michael's", "rachel's", "peter's", "laura's",
                  "kevin's", "maria's", "carlos's", "linda's", "robert's", "susan's", "george's",
                  "helen's", "alice's", "oscar's", "victor's", "julia's", "anna's", "paul's", "kate's"],
    "relation_poss": ["mom's", "dad's", "sister's", "brother's", "grandma's", "grandpa's", "aunt's",
                      "uncle's", "cousin's", "boss's", "best friend's", "girlfriend's", "boyfriend's",
                      "neighbor's", "son's", "daughter's", "niece's"],
    # A contact that may be a nested GET_CONTACT (messaging, reminder, event, navigation).
    "contact": ["<person>", "<person>", "<person>", "<person>",
                "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] ]",
                "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] ]",
                "[IN:GET_CONTACT [SL:CONTACT <name_poss> ] [SL:TYPE_RELATION <relation> ] ]"],
    "contact_group": ["[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relations> ] ]",
                      "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] ]",
                      "<person>"],

    # --- places ------------------------------------------------------------
    "city": ["paris", "london", "chicago", "boston", "denver", "seattle", "miami", "new york",
             "san francisco", "los angeles", "dallas", "houston", "atlanta", "phoenix", "portland",
             "austin", "nashville", "orlando", "detroit", "toronto", "berlin", "madrid", "rome",
             "tokyo", "sydney", "dublin", "vienna", "lisbon", "oslo", "cairo", "las vegas",
             "san diego", "philadelphia", "new orleans", "salt lake city", "kansas city",
             "pittsburgh", "baltimore", "cleveland", "memphis", "sacramento", "minneapolis",
             "saint louis", "vancouver", "montreal", "amsterdam", "barcelona", "edinburgh",
             "honolulu", "anchorage", "albuquerque", "omaha", "tucson", "charlotte", "buffalo",
             "richmond", "savannah", "boise", "spokane", "tampa"],
    "landmark": ["the golden gate bridge", "central park", "the space needle", "times square",
                 "the empire state building", "union station", "city hall", "the public library",
                 "the convention center", "fenway park", "wrigley field", "the grand canyon",
                 "niagara falls", "disneyland", "the white house", "the lincoln memorial",
                 "pike place market", "navy pier", "the french quarter", "lake tahoe",
                 "the hollywood bowl", "madison square garden", "the state capitol",
                 "the art museum", "the science center", "the aquarium", "the botanical garden",
                 "the county fairgrounds", "the riverfront", "the harbor", "the old town square",
                 "the brooklyn bridge", "the mall of america", "the rose bowl", "yankee stadium"],
    "place_category": ["gas station", "coffee shop", "grocery store", "pharmacy", "hospital", "bank",
                       "restaurant", "pizza place", "park", "gym", "library", "post office", "hotel",
                       "parking garage", "car wash", "bakery", "movie theater", "mall", "airport",
                       "train station", "bus stop", "hardware store", "pet store", "book store",
                       "beach", "museum", "playground", "ice cream shop", "taco truck",
                       "urgent care", "laundromat", "farmers market", "barber shop", "dog park"],
    "loc_modifier": ["nearest", "closest", "local", "best", "cheapest", "biggest"],
    "search_radius": ["near", "around", "close to", "next to", "by"],
    "location_user": ["me", "here", "my location", "my area", "where i am"],
    "home_word": ["house", "place", "home", "apartment"],
    "street_name": ["main", "oak", "maple", "pine", "elm", "park", "lake", "hill", "washington",
                    "lincoln", "jefferson", "market", "church", "river", "spring", "cedar", "sunset",
                    "mission", "broad", "state"],
    "road": ["interstate <n_min>", "highway <n_min>", "route <n_min>", "<street_name> street",
             "<street_name> avenue", "<street_name> boulevard", "the freeway", "the highway",
             "the beltway", "the parkway", "the turnpike", "the expressway", "the bridge",
             "the tunnel", "the ring road", "the coast road"],
    "road_category": ["highways", "toll roads", "the interstate", "the highway", "tolls",
                      "the freeway", "bridges", "the expressway", "the turnpike", "dirt roads"],
    "obstruction": ["traffic", "construction", "accidents", "road work", "the parade", "the accident",
                    "tolls", "the traffic jam", "the marathon", "the detour", "rush hour traffic",
                    "the road closure", "the stadium traffic", "the flooding", "the protest"],
    "road_condition": ["icy", "flooded", "closed", "slippery", "snowy", "clear", "wet", "blocked",
                       "open", "covered in snow", "foggy", "under construction", "jammed", "safe"],
    "method_travel": ["drive", "walk", "bike", "take the bus", "take the train", "ride my bike",
                      "take the subway", "carpool", "take a cab"],
    "unit_distance": ["miles", "kilometers", "blocks", "feet", "meters"],

    # A GET_LOCATION tree (any domain where TOPv2 nests GET_LOCATION).
    "get_location": [
        "[IN:GET_LOCATION [SL:POINT_ON_MAP <landmark> ] ]",
        "[IN:GET_LOCATION [SL:POINT_ON_MAP <landmark> ] ]",
        "[IN:GET_LOCATION the [SL:LOCATION_MODIFIER <loc_modifier> ] [SL:CATEGORY_LOCATION <place_category> ] ]",
        "[IN:GET_LOCATION the [SL:CATEGORY_LOCATION <place_category> ] [SL:SEARCH_RADIUS <search_radius> ] [SL:LOCATION_USER <location_user> ] ]",
        "[IN:GET_LOCATION the [SL:CATEGORY_LOCATION <place_category> ] in [SL:LOCATION_MODIFIER <city> ] ]",
        "[IN:GET_LOCATION the [SL:CATEGORY_LOCATION <place_category> ] [SL:SEARCH_RADIUS <search_radius> ] [SL:LOCATION <landmark> ] ]",
    ],
    "here": ["[IN:GET_LOCATION [SL:LOCATION_USER here ] ]", "[IN:GET_LOCATION [SL:LOCATION_USER my location ] ]",
             "[IN:GET_LOCATION [SL:LOCATION_USER where i am ] ]"],
    "loc_home": [
        "[IN:GET_LOCATION_HOME home ]",
        "[IN:GET_LOCATION_HOME home ]",
        "[IN:GET_LOCATION_HOME [SL:CONTACT my ] <home_word> ]",
        "[IN:GET_LOCATION_HOME [SL:CONTACT <name_poss> ] <home_word> ]",
        "[IN:GET_LOCATION_HOME [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation_poss> ] <home_word> ]",
        "[IN:GET_LOCATION_HOME [SL:TYPE_RELATION <relation_poss> ] <home_word> ]",
        "[IN:GET_LOCATION_HOME [SL:CONTACT <name_poss> ] <home_word> in [SL:LOCATION_CURRENT <city> ] ]",
    ],
    "loc_work": [
        "[IN:GET_LOCATION_WORK work ]",
        "[IN:GET_LOCATION_WORK work ]",
        "[IN:GET_LOCATION_WORK [SL:CONTACT my ] (office|job|work) ]",
        "[IN:GET_LOCATION_WORK [SL:CONTACT <name_poss> ] (office|work) ]",
        "[IN:GET_LOCATION_WORK [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation_poss> ] (office|work) ]",
    ],
    "loc_school": [
        "[IN:GET_LOCATION_SCHOOL school ]",
        "[IN:GET_LOCATION_SCHOOL [SL:CONTACT <name_poss> ] school ]",
        "[IN:GET_LOCATION_SCHOOL [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation_poss> ] school ]",
    ],
    "event_place": [
        "[IN:GET_EVENT the [SL:CATEGORY_EVENT <event_one> ] ]",
        "[IN:GET_EVENT [SL:ORGANIZER_EVENT my ] [SL:CATEGORY_EVENT <event_mine> ] ]",
        "[IN:GET_EVENT [SL:ORGANIZER_EVENT my ] [SL:DATE_TIME <clock> ] [SL:CATEGORY_EVENT <event_mine> ] ]",
        "[IN:GET_EVENT [SL:ORGANIZER_EVENT <name_poss> ] [SL:CATEGORY_EVENT <event_mine> ] ]",
        "[IN:GET_EVENT the [SL:NAME_EVENT <artist> ] [SL:CATEGORY_EVENT concert ] ]",
        "[IN:GET_EVENT the [SL:NAME_EVENT <team> ] [SL:CATEGORY_EVENT game ] ]",
        "[IN:GET_EVENT the [SL:CATEGORY_EVENT <event_one> ] at [SL:LOCATION <get_location> ] ]",
        "[IN:GET_EVENT the [SL:CATEGORY_EVENT <event_one> ] in [SL:LOCATION <city> ] ]",
        "[IN:GET_EVENT [SL:ORGANIZER_EVENT <contact_org> ] [SL:CATEGORY_EVENT <event_mine> ] ]",
    ],
    "contact_org": ["[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation_poss> ] ]"],
    # DESTINATION / SOURCE / WAYPOINT fillers (navigation).
    "dest": ["<city>", "<city>", "<dest_plain>", "downtown", "<get_location>", "<get_location>", "<loc_home>",
             "<loc_home>", "<loc_work>", "<loc_school>", "<event_place>", "<event_place>"],
    "dest_plain": ["<city>", "<city>", "downtown", "the airport", "the city", "the beach", "the coast",
                   "the mountains", "the lake", "midtown", "uptown", "the suburbs"],
    "source": ["<city>", "<city>", "<here>", "<loc_home>", "<loc_home>", "<loc_work>", "<loc_school>",
               "<get_location>"],
    "waypoint": ["[IN:GET_LOCATION [SL:CATEGORY_LOCATION <place_category> ] ]", "<city>", "<loc_home>",
                 "<loc_school>"],
    "path": ["<road>", "<road>", "<road>", "[IN:GET_LOCATION [SL:POINT_ON_MAP <landmark> ] ]"],
    "path_avoid": ["[IN:GET_LOCATION [SL:CATEGORY_LOCATION <road_category> ] ]", "<road>"],
    # a whole LOCATION slot with its preposition (traffic questions)
    "traffic_loc": ["in [SL:LOCATION <city> ]", "in [SL:LOCATION <city> ]", "on [SL:LOCATION <road> ]",
                    "on [SL:LOCATION <road> ]", "[SL:LOCATION downtown ]",
                    "[SL:LOCATION [IN:GET_LOCATION [SL:SEARCH_RADIUS <search_radius> ] [SL:LOCATION_USER <location_user> ] ] ]",
                    "[SL:LOCATION [IN:GET_LOCATION [SL:SEARCH_RADIUS <search_radius> ] [SL:POINT_ON_MAP <landmark> ] ] ]"],

    # --- events ------------------------------------------------------------
    "event_many": ["concerts", "festivals", "farmers markets", "art shows", "comedy shows", "yoga classes",
                   "parades", "fireworks", "craft fairs", "food festivals", "book signings",
                   "wine tastings", "movie nights", "basketball games", "football games",
                   "baseball games", "hockey games", "soccer games", "plays", "musicals",
                   "ballet performances", "car shows", "trivia nights", "dance classes",
                   "cooking classes", "open mic nights", "job fairs", "flea markets", "marathons",
                   "magic shows", "jazz concerts", "beer festivals", "story times", "poetry readings",
                   "art walks", "garage sales", "pumpkin patches", "holiday markets", "rodeos",
                   "air shows", "street fairs", "charity runs", "karaoke nights", "museum tours"],
    "event_one": ["concert", "festival", "parade", "fireworks show", "art show", "comedy show",
                  "farmers market", "street fair", "basketball game", "football game",
                  "baseball game", "hockey game", "soccer game", "play", "musical", "car show",
                  "marathon", "air show", "rodeo", "county fair", "book fair", "flea market"],
    "event_mine": ["meeting", "birthday party", "wedding", "baby shower", "graduation", "dinner party",
                   "dentist appointment", "doctor appointment", "job interview", "recital",
                   "retirement party", "game night", "book club", "soccer practice", "piano lesson",
                   "yoga class", "work party", "lunch meeting", "team meeting", "reunion"],
    "event_attr": ["free", "family friendly", "kid friendly", "outdoor", "indoor", "pet friendly",
                   "cheap", "all ages", "live", "romantic", "sold out", "popular"],
    "team": ["yankees", "lakers", "patriots", "cubs", "red sox", "warriors", "packers", "cowboys",
             "dodgers", "bulls", "seahawks", "giants", "celtics", "broncos", "eagles", "rangers"],

    # --- messaging ---------------------------------------------------------
    "content": [
        "i'm running late", "see you soon", "call me when you're free", "dinner is ready",
        "i love you", "don't forget the milk", "happy birthday", "good morning", "good night",
        "i miss you", "thanks for everything", "congratulations", "are you awake",
        "where are you", "what time is practice", "did you feed the dog", "the door is unlocked",
        "(i'll|we'll) be (home|there|back|late) (in <n_min> minutes|soon|by <clock>|after lunch|after work|<day_rel>)",
        "can you (pick up|grab|buy|bring) (some|the) (milk|bread|eggs|tickets|groceries|pizza|coffee|flowers|diapers|wine)",
        "(let's|should we|do you want to) (meet|have lunch|go running|watch a movie|get coffee|go shopping|play tennis) (<day_rel>|on <weekday>|at <clock>)",
        "the (meeting|party|game|dinner|show|appointment) (is|got) (cancelled|moved to <weekday>|at <clock>|starting late|over)",
        "(i|we) just (landed|got home|left work|finished dinner|arrived|woke up)",
        "(don't forget|remember) to (lock the door|feed the cat|call grandma|bring your jacket|take your keys|pay the rent)",
    ],
    "content_event": ["<content>", "<content>", "[IN:GET_EVENT the [SL:CATEGORY_EVENT <event_one> ] ]",
                      "[IN:GET_EVENT [SL:ORGANIZER_EVENT <name_poss> ] [SL:CATEGORY_EVENT <event_mine> ] ]",
                      "[IN:GET_EVENT the [SL:CATEGORY_EVENT <event_mine> ] [SL:DATE_TIME <day> ] ]"],
    "resource": ["whatsapp", "messenger", "skype", "email", "facebook", "instagram", "telegram",
                 "text", "signal", "slack"],
    "type_content": ["photo", "picture", "video", "voice message", "audio message", "selfie", "meme",
                     "link", "gif", "location", "voice note"],
    "group": ["book club", "family", "soccer team", "hiking club", "work", "church", "study",
              "running", "neighborhood", "college friends", "poker night", "band", "gardening club",
              "travel", "parents", "chess club"],
    "tag_message": ["unread", "new", "recent", "latest", "missed", "important", "old"],
    "reaction": ["like", "love", "laugh", "heart", "thumbs up", "sad face", "wow", "angry face",
                 "smiley face", "hug", "thumbs down", "laughing face", "crying face", "kiss"],
    "message_word": ["message", "text", "text message", "note"],

    # --- reminders ---------------------------------------------------------
    "todo_act": [
        "(buy|pick up|get|order) (milk|eggs|bread|flowers|a birthday card|dog food|coffee|batteries|groceries|paper towels|cat litter|printer paper|a gift for <name>|stamps)",
        "call (the dentist|the plumber|the bank|the doctor|the vet|the insurance company|the landlord|<name>|the school|the mechanic)",
        "take (my medicine|out the trash|the dog for a walk|the car in for service|my vitamins|out the recycling)",
        "water the (plants|garden|lawn|flowers)",
        "pay the (rent|electric bill|phone bill|credit card bill|water bill|gas bill|internet bill)",
        "(clean|vacuum|tidy) the (kitchen|garage|living room|bathroom|basement|car)",
        "feed the (cat|dog|fish|birds|chickens)",
        "(finish|submit|print|email) (my|the) (report|homework|taxes|essay|presentation|timesheet|application)",
        "book (a flight|a hotel|a table|a haircut|a massage|the campsite)",
        "(return|renew) the library books", "do the laundry", "go to the gym", "stretch",
        "drink water", "check the mail", "renew my passport", "wash the car", "walk the dog",
        "lock the front door", "defrost the chicken", "charge my phone", "back up my laptop",
        "change the air filter", "send the invoice", "practice piano", "meditate",
    ],
    "todo_noun": ["dentist appointment", "meeting", "electric bill", "flight", "rent", "party",
                  "doctor appointment", "car payment", "oil change", "team lunch", "haircut",
                  "parent teacher conference", "package", "medicine", "bake sale", "field trip",
                  "book club", "yoga class", "soccer practice", "vet appointment", "concert tickets",
                  "job interview", "library books", "gym class", "tax return", "birthday dinner",
                  "piano lesson", "school play", "car wash", "garbage pickup"],
    "todo_thing": ["my <todo_noun>", "the <todo_noun>", "trash day", "my <todo_noun>"],
    "todo_about": ["<todo_thing>", "<todo_thing>", "<todo_thing>",
                   "[IN:GET_TODO [SL:TODO <todo_social> ] with [SL:ATTENDEE <contact> ] ]"],
    "todo_social": ["lunch", "dinner", "coffee", "a meeting", "a call", "tennis", "yoga", "brunch",
                    "a study session", "drinks", "a walk", "a movie"],
    "todo_social_act": ["have lunch", "have dinner", "get coffee", "play tennis", "do yoga", "have brunch",
                        "go for a walk", "see a movie", "study", "go running", "grab drinks", "go shopping"],
    "todo": ["<todo_act>", "<todo_act>", "<todo_act>", "<todo_act>",
             "[IN:GET_TODO [SL:TODO <todo_social_act> ] with [SL:ATTENDEE <contact> ] ]",
             "[IN:GET_TODO [SL:TODO <todo_act> ] [SL:DATE_TIME <day> ] ]",
             "[IN:SEND_MESSAGE (text|call|email|message) [SL:RECIPIENT <contact> ] ]",
             "[IN:SEND_MESSAGE (text|email|message) [SL:RECIPIENT <contact> ] about [SL:CONTENT_EXACT <content_event> ] ]",
             "[IN:SEND_MESSAGE send [SL:RECIPIENT <contact> ] a [SL:TYPE_CONTENT <type_content> ] ]",
             "[IN:REPLY_MESSAGE (reply|respond|write back) to [SL:RECIPIENT <contact> ] ]"],
    "todo_ref": ["to [SL:TODO <todo_act> ]", "(about|for) [SL:TODO <todo_about> ]",
                 "(about|for) [SL:TODO <todo_about> ]"],
    "person_reminded": ["me", "me", "me", "me", "us", "<person>",
                        "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] ]",
                        "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relations> ] ]"],
    "frequency": ["daily", "weekly", "monthly", "yearly", "biweekly", "nightly", "hourly"],
    "recurring": [
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY every ] [SL:DATE_TIME <weekday> ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY every ] [SL:DATE_TIME <part_of_day> at <clock> ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY <frequency> ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY <frequency> ] [SL:DATE_TIME at <clock> ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY every ] [SL:DATE_TIME <n_small> hours ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY every ] [SL:DATE_TIME day ] ]",
        "[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY every other ] [SL:DATE_TIME <weekday> ] ]",
    ],
    "freq_adj": ["[IN:GET_RECURRING_DATE_TIME [SL:FREQUENCY <frequency> ] ]"],
    "retrieval": ["show", "tell", "read", "list", "play", "give"],

    # --- music -------------------------------------------------------------
    "artist": ["taylor swift", "ed sheeran", "adele", "beyonce", "drake", "rihanna", "the beatles",
               "queen", "coldplay", "eminem", "bruno mars", "lady gaga", "katy perry", "billie eilish",
               "michael jackson", "prince", "elvis presley", "bob marley", "frank sinatra",
               "dolly parton", "johnny cash", "miles davis", "ella fitzgerald", "nirvana", "metallica",
               "the rolling stones", "fleetwood mac", "abba", "madonna", "shakira", "justin bieber",
               "ariana grande", "kanye west", "post malone", "the weeknd", "harry styles", "lizzo",
               "dua lipa", "imagine dragons", "maroon five", "green day", "pearl jam", "radiohead",
               "norah jones", "john legend", "alicia keys", "stevie wonder", "aretha franklin",
               "whitney houston", "celine dion", "luke bryan", "carrie underwood", "garth brooks",
               "bruce springsteen", "elton john", "david bowie", "pink floyd", "the eagles",
               "bon jovi", "shania twain", "willie nelson", "louis armstrong", "nina simone"],
    "track": ["yesterday", "hey jude", "let it be", "imagine", "hotel california", "bohemian rhapsody",
              "shape of you", "rolling in the deep", "hello", "bad guy", "blinding lights", "thriller",
              "billie jean", "purple rain", "wonderwall", "halo", "stay with me", "someone like you",
              "uptown funk", "happy", "roar", "firework", "sweet child of mine", "yellow", "clocks",
              "viva la vida", "dancing queen", "respect", "my girl", "lose yourself", "old town road",
              "shake it off", "bad romance", "poker face", "umbrella", "perfect", "thinking out loud",
              "all of me", "take on me", "africa", "dreams", "landslide", "jolene", "hallelujah",
              "wild horses", "piano man", "sweet caroline", "fly me to the moon", "at last",
              "stand by me", "lean on me", "superstition", "september", "livin on a prayer",
              "dancing in the dark", "rocket man", "space oddity", "wish you were here"],
    "album": ["abbey road", "thriller", "rumours", "back in black", "nevermind", "the dark side of the moon",
              "purple rain", "divide", "twenty one", "lemonade", "folklore", "random access memories",
              "a night at the opera", "born to run", "hotel california", "graceland", "blue",
              "kind of blue", "the joshua tree", "led zeppelin four", "back to black", "renaissance",
              "future nostalgia", "after hours", "fine line", "red", "midnights", "thirty"],
    "genre": ["jazz", "rock", "classical", "country", "hip hop", "pop", "blues", "reggae", "metal",
              "folk", "indie", "soul", "funk", "disco", "electronic", "rap", "gospel", "punk", "latin",
              "bluegrass", "classic rock", "smooth jazz", "eighties", "nineties", "oldies", "dance",
              "acoustic", "ambient", "opera", "salsa", "alternative", "techno", "house"],
    "playlist": ["workout", "road trip", "chill", "party", "study", "sleep", "morning", "dinner",
                 "running", "summer hits", "rainy day", "focus", "throwback", "relax", "sunday morning",
                 "late night", "beach", "cooking", "wedding", "christmas", "favorites", "gym",
                 "happy vibes", "love songs", "coffee house", "yoga", "cleaning", "dance party"],
    "provider": ["spotify", "pandora", "youtube", "youtube music", "apple music", "amazon music",
                 "soundcloud", "tidal", "deezer", "napster"],
    "music_type": ["song", "song", "music", "album", "playlist", "track", "radio", "station", "songs"],
    "music_type_cur": ["song", "song", "track", "music", "album", "playlist", "tune"],
    "radio_id": ["<freq_mhz> point <digit>"],
    "skip_ordinal": ["next", "next", "next", "following", "second"],
    "prev_ordinal": ["previous", "previous", "last", "prior"],

    # --- weather -----------------------------------------------------------
    "weather_verb": ["rain", "snow", "hail", "storm", "be sunny", "be windy", "be cold", "be hot",
                     "be cloudy", "freeze", "drizzle", "pour", "clear up", "warm up", "cool down"],
    "weather_adj": ["sunny", "cloudy", "windy", "hot", "cold", "humid", "foggy", "stormy", "rainy",
                    "snowy", "warm", "chilly", "freezing", "clear", "muggy", "icy", "breezy"],
    "weather_noun": ["forecast", "temperature", "humidity", "wind speed", "high", "low",
                     "chance of rain", "chance of snow", "weather", "wind chill", "heat index",
                     "rainfall", "snowfall", "dew point", "barometric pressure", "visibility"],
    "weather_unsup": ["pollen count", "air quality", "smog level", "moon phase", "tide",
                      "ocean temperature", "allergy report", "wildfire smoke"],
    "temp_unit": ["celsius", "fahrenheit", "degrees celsius", "degrees fahrenheit", "kelvin"],
    "weather_loc": ["<city>", "<city>", "<city>", "<city>",
                    "[IN:GET_LOCATION [SL:LOCATION_USER my area ] ]",
                    "[IN:GET_LOCATION [SL:LOCATION_USER (my area|my neighborhood|my town) ] ]",
                    "[IN:GET_LOCATION [SL:POINT_ON_MAP <landmark> ] ]"],

    # --- timers ------------------------------------------------------------
    "method_timer": ["timer", "timer", "timer", "stopwatch", "countdown"],
    "timer_name": ["pasta", "laundry", "coffee", "workout", "tea", "oven", "pizza", "eggs", "rice",
                   "cookie", "bread", "nap", "study", "meditation", "parking", "turkey", "cake",
                   "homework", "plank", "steak", "brownie", "potato", "chicken", "soup", "reading"],
    "timer_label": ["[SL:TIMER_NAME <timer_name> ]", "[SL:TIMER_NAME <timer_name> ]",
                    "[SL:TIMER_NAME [IN:GET_TIME [SL:DATE_TIME <minute_label> ] ] ]"],
    "alarm_name": ["wake up", "gym", "medicine", "school pickup", "work", "meeting", "yoga", "nap",
                   "bedtime", "church", "laundry", "dentist", "soccer practice", "breakfast",
                   "flight", "morning run", "study", "lunch", "feed the dog", "pills"],
    "alarm_pre": ["[SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <clock> ] ] ]",
                  "[SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <weekday> ] ] ]",
                  "[SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <day_rel> ] ] ]",
                  "[SL:ALARM_NAME <alarm_name> ]"],
    "alarm_ref": ["[SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <alarm_when> ] ] ]",
                  "[SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <alarm_when> ] ] ]",
                  "(called|named|labeled) [SL:ALARM_NAME <alarm_name> ]"],
}


# ----------------------------------------------------------------------------
# Intents: domain -> [(intent label, sampling weight, templates)].
# Templates are the words inside the root intent node.

INTENTS: dict[str, list[tuple[str, float, list[str]]]] = {
    "alarm": [
        ("CREATE_ALARM", 5, [
            "<pls> set (an|the|my) alarm [SL:DATE_TIME <alarm_time> ] <end>",
            "<pls> wake me up [SL:DATE_TIME <alarm_time> ]",
            "<pls> create an alarm [SL:DATE_TIME <alarm_time> ]",
            "i need an alarm [SL:DATE_TIME <alarm_time> ]",
            "alarm [SL:DATE_TIME <alarm_time> ]",
            "<pls> set an alarm [SL:DATE_TIME_RECURRING <alarm_recurring> ]",
            "<pls> make a (repeating|recurring) alarm [SL:DATE_TIME_RECURRING <alarm_recurring> ]",
            "<pls> set an alarm (called|named|labeled) [SL:ALARM_NAME <alarm_name> ] [SL:DATE_TIME <alarm_time> ]",
            "<pls> set a [SL:ALARM_NAME <alarm_name> ] alarm [SL:DATE_TIME <alarm_time> ]",
            "<pls> set an alarm to go off [SL:PERIOD <alarm_period> ] [SL:DURATION <alarm_duration> ]",
            "<pls> set an alarm [SL:PERIOD <alarm_period> ]",
            "<pls> set [SL:AMOUNT <n_small> ] alarms [SL:DATE_TIME <alarm_time> ]",
            "i want to wake up [SL:DATE_TIME <alarm_time> ]",
            "<pls> add an alarm [SL:DATE_TIME <alarm_time> ] <end>",
        ]),
        ("GET_ALARM", 2, [
            "<pls> show me (my|all my|the) alarms",
            "what alarms do i have [SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <alarm_when> ] ] ]",
            "when is my [SL:ORDINAL next ] alarm",
            "<pls> list [SL:AMOUNT all ] (my|the) alarms",
            "do i have an alarm set [SL:ALARM_NAME [IN:GET_TIME [SL:DATE_TIME <alarm_when> ] ] ]",
            "is my [SL:ALARM_NAME <alarm_name> ] alarm (on|set)",
            "what time is my [SL:ORDINAL (next|first|last) ] alarm",
            "how many alarms do i have",
            "<ask> (which|what) alarms are (on|active|set)",
        ]),
        ("DELETE_ALARM", 2, [
            "<pls> (delete|cancel|remove) (my|the) alarm <alarm_ref> <end>",
            "<pls> (delete|cancel|remove) [SL:AMOUNT all ] (my|the) alarms",
            "<pls> (delete|cancel|remove) the [SL:ORDINAL (next|first|last|second) ] alarm",
            "<pls> (delete|cancel|remove|turn off) my <alarm_pre> alarm",
            "i don't need the alarm <alarm_ref> anymore",
            "get rid of [SL:AMOUNT (all|both) ] (my|the) alarms",
            "<pls> clear [SL:AMOUNT all ] alarms",
        ]),
        ("UPDATE_ALARM", 2, [
            "<pls> (change|move|reset) my alarm <alarm_ref> to [SL:DATE_TIME <clock> ]",
            "<pls> (change|move|push) the alarm <alarm_ref> to [SL:DATE_TIME <clock> ]",
            "<pls> (change|update) my [SL:ORDINAL (next|first|last) ] alarm to [SL:DATE_TIME <clock> ]",
            "<pls> add [SL:DATE_TIME <n_small> minutes ] to my alarm",
            "<pls> push my [SL:ALARM_NAME <alarm_name> ] alarm back to [SL:DATE_TIME <clock> ]",
            "<pls> make my alarm <alarm_ref> go off at [SL:DATE_TIME <clock> ] instead",
        ]),
        ("SILENCE_ALARM", 1.5, [
            "<pls> (stop|silence|turn off|shut off|mute) the alarm",
            "<pls> (stop|silence|turn off|shut off) [SL:AMOUNT all ] (the|my) alarms",
            "<pls> (silence|turn off|stop) my [SL:ALARM_NAME <alarm_name> ] alarm",
            "<pls> (silence|turn off) the [SL:ORDINAL (next|current) ] alarm",
            "(make the alarm stop|shut that alarm up|stop that ringing)",
        ]),
        ("SNOOZE_ALARM", 1.5, [
            "<pls> snooze (the|my) alarm",
            "<pls> snooze (the alarm|my alarm|it) for [SL:DATE_TIME <snooze_length> ]",
            "<pls> snooze",
            "snooze for [SL:DATE_TIME <snooze_length> ]",
            "<pls> snooze my [SL:ALARM_NAME <alarm_name> ] alarm",
            "let me sleep [SL:DATE_TIME <snooze_length> ]",
        ]),
    ],
    "timer": [
        ("CREATE_TIMER", 4, [
            "<pls> set a [SL:METHOD_TIMER <method_timer> ] for [SL:DATE_TIME <length> ] <end>",
            "<pls> start a [SL:DATE_TIME <minute_label> ] [SL:METHOD_TIMER timer ]",
            "<pls> set a [SL:TIMER_NAME <timer_name> ] [SL:METHOD_TIMER timer ] for [SL:DATE_TIME <length> ]",
            "<pls> start a [SL:METHOD_TIMER <method_timer> ]",
            "<pls> time my [SL:TIMER_NAME <timer_name> ] for [SL:DATE_TIME <length> ]",
            "[SL:METHOD_TIMER timer ] for [SL:DATE_TIME <length> ]",
            "<pls> count down [SL:DATE_TIME <length> ]",
            "<pls> create a [SL:METHOD_TIMER timer ] (called|named) [SL:TIMER_NAME <timer_name> ] for [SL:DATE_TIME <length> ]",
            "i need a [SL:METHOD_TIMER timer ] for [SL:DATE_TIME <length> ]",
        ]),
        ("GET_TIMER", 2, [
            "how much time is left on (my|the) [SL:METHOD_TIMER <method_timer> ]",
            "how much time is left on the <timer_label> [SL:METHOD_TIMER timer ]",
            "how long (until|before) the <timer_label> [SL:METHOD_TIMER timer ] (goes off|is done|ends)",
            "<ask> how long is left on my [SL:METHOD_TIMER timer ]",
            "<pls> check (my|the) [SL:METHOD_TIMER <method_timer> ]",
            "what's (left|remaining) on (my|the) [SL:ORDINAL (first|second|last) ] [SL:METHOD_TIMER timer ]",
            "how long has the [SL:METHOD_TIMER <method_timer> ] been running",
            "<pls> show me [SL:AMOUNT all ] my [SL:METHOD_TIMER timers ]",
        ]),
        ("PAUSE_TIMER", 1.5, [
            "<pls> pause (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> pause the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> pause [SL:AMOUNT all ] (the|my) [SL:METHOD_TIMER timers ]",
            "<pls> hold the [SL:METHOD_TIMER <method_timer> ]",
            "<pls> freeze (the|my) [SL:METHOD_TIMER <method_timer> ] for a (second|moment)",
        ]),
        ("RESUME_TIMER", 1.5, [
            "<pls> (resume|unpause|continue) (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> (resume|unpause|continue) the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> (start|get) the [SL:METHOD_TIMER <method_timer> ] (going|running) again",
            "<pls> keep the [SL:METHOD_TIMER timer ] going",
        ]),
        ("RESTART_TIMER", 1.2, [
            "<pls> restart (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> restart the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> start the [SL:METHOD_TIMER <method_timer> ] over (again|from the beginning|)",
            "<pls> reset the [SL:METHOD_TIMER <method_timer> ] and start it again",
        ]),
        ("DELETE_TIMER", 1.5, [
            "<pls> (cancel|delete|remove|clear) (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> (cancel|delete|remove) the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> (cancel|delete|clear) [SL:AMOUNT all ] (the|my) [SL:METHOD_TIMER timers ]",
            "<pls> get rid of the [SL:ORDINAL (first|second|last) ] [SL:METHOD_TIMER timer ]",
            "i don't need the [SL:METHOD_TIMER <method_timer> ] anymore",
        ]),
        ("ADD_TIME_TIMER", 1.5, [
            "<pls> add [SL:DATE_TIME <length_short> ] to (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> add [SL:DATE_TIME <length_short> ] to the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> put [SL:DATE_TIME <length_short> ] (more|extra) on the [SL:METHOD_TIMER timer ]",
            "<pls> extend (the|my) [SL:METHOD_TIMER <method_timer> ] by [SL:DATE_TIME <length_short> ]",
            "give the <timer_label> [SL:METHOD_TIMER timer ] [SL:DATE_TIME <length_short> ] more",
        ]),
        ("SUBTRACT_TIME_TIMER", 1.2, [
            "<pls> (take|knock) [SL:DATE_TIME <length_short> ] off (the|my) [SL:METHOD_TIMER <method_timer> ]",
            "<pls> subtract [SL:DATE_TIME <length_short> ] from the <timer_label> [SL:METHOD_TIMER timer ]",
            "<pls> (reduce|shorten) the [SL:METHOD_TIMER <method_timer> ] by [SL:DATE_TIME <length_short> ]",
            "<pls> remove [SL:DATE_TIME <length_short> ] from my [SL:METHOD_TIMER timer ]",
        ]),
        ("UPDATE_TIMER", 1.2, [
            "<pls> (change|update|set) (the|my) [SL:METHOD_TIMER <method_timer> ] to [SL:DATE_TIME <length> ]",
            "<pls> (change|update) the <timer_label> [SL:METHOD_TIMER timer ] to [SL:DATE_TIME <length> ]",
            "<pls> make (the|my) [SL:METHOD_TIMER timer ] [SL:DATE_TIME <length> ] instead",
            "<pls> switch the [SL:METHOD_TIMER timer ] to [SL:DATE_TIME <length> ]",
        ]),
    ],
    "weather": [
        ("GET_WEATHER", 6, [
            "<ask> what's the [SL:WEATHER_ATTRIBUTE <weather_noun> ] [SL:DATE_TIME <weather_when> ]",
            "<ask> what's the [SL:WEATHER_ATTRIBUTE <weather_noun> ] (in|for) [SL:LOCATION <weather_loc> ] [SL:DATE_TIME <weather_when> ]",
            "<ask> what is the [SL:WEATHER_ATTRIBUTE <weather_noun> ] (in|for) [SL:LOCATION <weather_loc> ]",
            "(is it going to|will it|does it look like it will|is it supposed to) [SL:WEATHER_ATTRIBUTE <weather_verb> ] [SL:DATE_TIME <weather_when> ]",
            "(is it going to|will it) [SL:WEATHER_ATTRIBUTE <weather_verb> ] in [SL:LOCATION <weather_loc> ] [SL:DATE_TIME <weather_when> ]",
            "(is it|will it be) [SL:WEATHER_ATTRIBUTE <weather_adj> ] (in|around) [SL:LOCATION <weather_loc> ] [SL:DATE_TIME <weather_when> ]",
            "how [SL:WEATHER_ATTRIBUTE <weather_adj> ] (is it|will it be) [SL:DATE_TIME <weather_when> ]",
            "<ask> what's the weather (like|) [SL:DATE_TIME <weather_when> ]",
            "<ask> what's the weather (like|) in [SL:LOCATION <weather_loc> ] [SL:DATE_TIME <weather_when> ]",
            "<ask> what's the weather (going to be|) in [SL:LOCATION <weather_loc> ]",
            "weather (for|in) [SL:LOCATION <weather_loc> ] [SL:DATE_TIME <weather_when> ]",
            "<pls> give me the [SL:WEATHER_ATTRIBUTE <weather_noun> ] for [SL:LOCATION <weather_loc> ]",
            "what's the temperature in [SL:WEATHER_TEMPERATURE_UNIT <temp_unit> ] [SL:DATE_TIME <weather_when> ]",
            "how many degrees [SL:WEATHER_TEMPERATURE_UNIT <temp_unit> ] is it (outside|) in [SL:LOCATION <weather_loc> ]",
            "<pls> show me the weather in [SL:WEATHER_TEMPERATURE_UNIT <temp_unit> ]",
            "do i need (an umbrella|a jacket|a coat|sunscreen) [SL:DATE_TIME <weather_when> ]",
            "should i expect [SL:WEATHER_ATTRIBUTE (rain|snow|thunderstorms|hail|sleet|fog) ] [SL:DATE_TIME <weather_when> ]",
        ]),
        ("UNSUPPORTED_WEATHER", 1, [
            "<ask> what's the [SL:WEATHER_ATTRIBUTE <weather_unsup> ] [SL:DATE_TIME <weather_when> ]",
            "<ask> what is the [SL:WEATHER_ATTRIBUTE <weather_unsup> ] in [SL:LOCATION <city> ]",
            "how bad is the [SL:WEATHER_ATTRIBUTE <weather_unsup> ] [SL:DATE_TIME <weather_when> ]",
            "<pls> check the [SL:WEATHER_ATTRIBUTE <weather_unsup> ] (for|in) [SL:LOCATION <city> ]",
        ]),
        ("GET_SUNRISE", 1, [
            "<ask> (what time|when) is (the|) sunrise [SL:DATE_TIME <weather_when> ]",
            "<ask> (what time|when) does the sun (rise|come up) (in [SL:LOCATION <city> ]|) [SL:DATE_TIME <weather_when> ]",
            "<ask> when is sunrise in [SL:LOCATION <weather_loc> ]",
            "how early does it get light [SL:DATE_TIME <weather_when> ]",
        ]),
        ("GET_SUNSET", 1, [
            "<ask> (what time|when) is (the|) sunset [SL:DATE_TIME <weather_when> ]",
            "<ask> (what time|when) does the sun (set|go down) (in [SL:LOCATION <city> ]|) [SL:DATE_TIME <weather_when> ]",
            "<ask> when is sunset in [SL:LOCATION <weather_loc> ]",
            "when will it (get|start to get) dark [SL:DATE_TIME <weather_when> ]",
        ]),
    ],
    "music": [
        ("PLAY_MUSIC", 6, [
            "<pls> play [SL:MUSIC_ARTIST_NAME <artist> ] <end>",
            "<pls> play (some|) [SL:MUSIC_GENRE <genre> ] [SL:MUSIC_TYPE music ]",
            "<pls> play [SL:MUSIC_TRACK_TITLE <track> ] by [SL:MUSIC_ARTIST_NAME <artist> ]",
            "<pls> play the [SL:MUSIC_TYPE song ] [SL:MUSIC_TRACK_TITLE <track> ]",
            "<pls> play [SL:MUSIC_ARTIST_NAME <artist> ] on [SL:MUSIC_PROVIDER_NAME <provider> ]",
            "<pls> play my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] [SL:MUSIC_TYPE playlist ]",
            "<pls> play the [SL:MUSIC_TYPE album ] [SL:MUSIC_ALBUM_TITLE <album> ]",
            "<pls> (put on|turn on|start) (some|) [SL:MUSIC_GENRE <genre> ]",
            "<pls> play [SL:MUSIC_GENRE <genre> ] on [SL:MUSIC_PROVIDER_NAME <provider> ]",
            "i want to (hear|listen to) [SL:MUSIC_ARTIST_NAME <artist> ]",
            "i want to (hear|listen to) [SL:MUSIC_TRACK_TITLE <track> ]",
            "<pls> turn on the [SL:MUSIC_TYPE radio ] to [SL:MUSIC_RADIO_ID <radio_id> ]",
            "<pls> tune in to [SL:MUSIC_RADIO_ID <radio_id> ]",
            "<pls> play [SL:MUSIC_TYPE songs ] by [SL:MUSIC_ARTIST_NAME <artist> ]",
            "<pls> play [SL:MUSIC_GENRE <genre> ] [SL:MUSIC_TYPE <music_type> ] by [SL:MUSIC_ARTIST_NAME <artist> ]",
            "<pls> play something by [SL:MUSIC_ARTIST_NAME <artist> ]",
        ]),
        ("SKIP_TRACK_MUSIC", 1.5, [
            "<pls> skip (this|the) [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> skip to the [SL:ORDINAL <skip_ordinal> ] [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> play the [SL:ORDINAL next ] [SL:MUSIC_TYPE <music_type_cur> ]",
            "[SL:ORDINAL next ] [SL:MUSIC_TYPE <music_type_cur> ] <end>",
            "<pls> skip ahead",
            "i don't like this [SL:MUSIC_TYPE <music_type_cur> ] skip it",
        ]),
        ("PREVIOUS_TRACK_MUSIC", 1.2, [
            "<pls> go back to the [SL:ORDINAL <prev_ordinal> ] [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> play the [SL:ORDINAL <prev_ordinal> ] [SL:MUSIC_TYPE <music_type_cur> ] (again|)",
            "[SL:ORDINAL previous ] [SL:MUSIC_TYPE <music_type_cur> ] <end>",
            "<pls> go back (one|a) [SL:MUSIC_TYPE <music_type_cur> ]",
        ]),
        ("REPLAY_MUSIC", 1.2, [
            "<pls> (replay|repeat) (this|that|the) [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> play (this|that) [SL:MUSIC_TYPE <music_type_cur> ] again",
            "<pls> start (this|the) [SL:MUSIC_TYPE <music_type_cur> ] (over|from the beginning)",
            "<pls> (replay|repeat) [SL:MUSIC_TRACK_TITLE <track> ]",
        ]),
        ("PAUSE_MUSIC", 1.2, [
            "<pls> pause (the|this|my) [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> pause [SL:MUSIC_PROVIDER_NAME <provider> ]",
            "<pls> pause (it|playback) (for a second|for a minute|)",
            "<pls> hold the [SL:MUSIC_TYPE music ]",
        ]),
        ("STOP_MUSIC", 1.2, [
            "<pls> stop (the|this) [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> (stop|close|quit) [SL:MUSIC_PROVIDER_NAME <provider> ]",
            "<pls> turn off the [SL:MUSIC_TYPE (music|radio) ]",
            "no more [SL:MUSIC_TYPE music ] <end>",
        ]),
        ("START_SHUFFLE_MUSIC", 1.2, [
            "<pls> shuffle my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] [SL:MUSIC_TYPE playlist ]",
            "<pls> shuffle [SL:MUSIC_ARTIST_NAME <artist> ]",
            "<pls> (turn on|start) shuffle (on [SL:MUSIC_PROVIDER_NAME <provider> ]|)",
            "<pls> shuffle (the|this) [SL:MUSIC_TYPE (album|playlist|music) ]",
            "<pls> play [SL:MUSIC_GENRE <genre> ] on shuffle",
        ]),
        ("LOOP_MUSIC", 1, [
            "<pls> (loop|keep repeating) (this|the) [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> put (this|the) [SL:MUSIC_TYPE <music_type_cur> ] on (loop|repeat)",
            "<pls> loop [SL:MUSIC_TRACK_TITLE <track> ]",
            "<pls> play [SL:MUSIC_ALBUM_TITLE <album> ] on repeat",
        ]),
        ("LIKE_MUSIC", 1, [
            "i (like|love|really like) this [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> (like|thumbs up) this [SL:MUSIC_TYPE <music_type_cur> ]",
            "this [SL:MUSIC_TYPE <music_type_cur> ] is (great|awesome|amazing)",
            "<pls> (like|thumbs up) this [SL:MUSIC_TYPE song ] on [SL:MUSIC_PROVIDER_NAME <provider> ]",
        ]),
        ("DISLIKE_MUSIC", 1, [
            "i (hate|don't like|dislike) this [SL:MUSIC_TYPE <music_type_cur> ]",
            "<pls> (dislike|thumbs down) this [SL:MUSIC_TYPE <music_type_cur> ]",
            "this [SL:MUSIC_TYPE <music_type_cur> ] is (terrible|awful|boring)",
            "never play (this|that) [SL:MUSIC_TYPE <music_type_cur> ] again",
        ]),
        ("CREATE_PLAYLIST_MUSIC", 1, [
            "<pls> (create|make|start) a (new|) [SL:MUSIC_TYPE playlist ] (called|named) [SL:MUSIC_PLAYLIST_TITLE <playlist> ]",
            "<pls> make a [SL:MUSIC_GENRE <genre> ] [SL:MUSIC_TYPE playlist ]",
            "<pls> create a [SL:MUSIC_TYPE playlist ] (of|with) [SL:MUSIC_ARTIST_NAME <artist> ] [SL:MUSIC_TYPE songs ]",
            "<pls> build me a [SL:MUSIC_TYPE playlist ] on [SL:MUSIC_PROVIDER_NAME <provider> ]",
        ]),
        ("ADD_TO_PLAYLIST_MUSIC", 1, [
            "<pls> add this [SL:MUSIC_TYPE <music_type_cur> ] to my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] [SL:MUSIC_TYPE playlist ]",
            "<pls> add [SL:MUSIC_TRACK_TITLE <track> ] to (my|the) [SL:MUSIC_PLAYLIST_TITLE <playlist> ] (playlist|list)",
            "<pls> put this [SL:MUSIC_TYPE song ] on my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] (playlist|mix)",
            "<pls> save this [SL:MUSIC_TYPE <music_type_cur> ] to [SL:MUSIC_PLAYLIST_TITLE <playlist> ]",
        ]),
        ("REMOVE_FROM_PLAYLIST_MUSIC", 1, [
            "<pls> (remove|delete|take) this [SL:MUSIC_TYPE <music_type_cur> ] from my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] (playlist|list)",
            "<pls> remove [SL:MUSIC_ARTIST_NAME <artist> ] from (my|the) [SL:MUSIC_TYPE playlist ]",
            "<pls> take [SL:MUSIC_TRACK_TITLE <track> ] off (my|the) [SL:MUSIC_TYPE playlist ]",
            "<pls> (remove|delete) the [SL:MUSIC_GENRE <genre> ] [SL:MUSIC_TYPE songs ] from my [SL:MUSIC_PLAYLIST_TITLE <playlist> ] playlist",
        ]),
    ],
    "messaging": [
        ("SEND_MESSAGE", 6, [
            "<pls> (text|message) [SL:RECIPIENT <contact> ] [SL:CONTENT_EXACT <content> ]",
            "<pls> send a (message|text) to [SL:RECIPIENT <contact> ] (saying|that says) [SL:CONTENT_EXACT <content> ]",
            "<pls> (tell|let) [SL:RECIPIENT <contact> ] (know|) that [SL:CONTENT_EXACT <content> ]",
            "<pls> send [SL:RECIPIENT <contact> ] a (message|text) (saying|) [SL:CONTENT_EXACT <content> ]",
            "<pls> (message|text) [SL:RECIPIENT <contact> ] on [SL:RESOURCE <resource> ] (saying|) [SL:CONTENT_EXACT <content> ]",
            "<pls> send a [SL:RESOURCE <resource> ] message to [SL:RECIPIENT <contact> ]",
            "<pls> send (this|that|a) [SL:TYPE_CONTENT <type_content> ] to [SL:RECIPIENT <contact> ]",
            "<pls> send a message to the [SL:GROUP <group> ] group (saying|) [SL:CONTENT_EXACT <content> ]",
            "<pls> (message|text) the [SL:GROUP <group> ] (group|chat) [SL:CONTENT_EXACT <content> ]",
            "<pls> send [SL:RECIPIENT <contact> ] (a|the) [SL:TYPE_CONTENT <type_content> ] on [SL:RESOURCE <resource> ]",
            "<want> (text|message) [SL:RECIPIENT <contact> ]",
            "<want> send a <message_word> to [SL:RECIPIENT <contact> ] (saying|) [SL:CONTENT_EXACT <content> ]",
            "<pls> reply to [SL:RECIPIENT <contact> ] (and say|saying) [SL:CONTENT_EXACT <content> ]",
        ]),
        ("GET_MESSAGE", 2.5, [
            "<pls> (read|show me|play) my [SL:TAG_MESSAGE <tag_message> ] messages",
            "do i have any [SL:TAG_MESSAGE <tag_message> ] messages (from [SL:SENDER <contact> ]|)",
            "did [SL:SENDER <contact> ] (text|message) [SL:RECIPIENT me ] [SL:DATE_TIME <past_span> ]",
            "<pls> (read|show me) [SL:AMOUNT all ] (messages|texts) from [SL:SENDER <contact> ]",
            "<pls> read the [SL:ORDINAL (last|latest|first) ] message from [SL:SENDER <contact> ]",
            "<pls> show me the messages from the [SL:GROUP <group> ] group",
            "what did [SL:SENDER <contact> ] (say|send me) [SL:DATE_TIME <past_span> ]",
            "<pls> check my [SL:RESOURCE <resource> ] messages",
            "any (new|) (messages|texts) from [SL:SENDER <contact> ] [SL:DATE_TIME <past_span> ]",
        ]),
        ("REACT_MESSAGE", 2, [
            "<pls> [SL:TYPE_REACTION <reaction> ] the [SL:ORDINAL (last|latest) ] message from [SL:RECIPIENT <contact> ]",
            "<pls> react with a [SL:TYPE_REACTION <reaction> ] to the message from [SL:RECIPIENT <contact> ]",
            "<pls> send a [SL:TYPE_REACTION <reaction> ] (reaction|) to (that|this) message",
            "<pls> [SL:TYPE_REACTION <reaction> ] the [SL:TYPE_CONTENT <type_content> ] from [SL:RECIPIENT <contact> ]",
            "<pls> put a [SL:TYPE_REACTION <reaction> ] on the message in the [SL:GROUP <group> ] group",
            "<pls> react [SL:TYPE_REACTION <reaction> ] to (that|this) message",
        ]),
        ("IGNORE_MESSAGE", 1, [
            "<pls> ignore (that|this|the) message",
            "don't (reply|respond) to (that|this) message",
            "i don't want to (hear|read) (that|this|the) message",
            "<pls> ignore the [SL:TYPE_CONTENT <type_content> ]",
            "just ignore (it|that text|the new message)",
        ]),
        ("CANCEL_MESSAGE", 1, [
            "<pls> cancel (that|this|the|my) message",
            "<pls> (cancel|delete) the [SL:TYPE_CONTENT <type_content> ] message",
            "don't send (that|this|the) (message|text)",
            "<pls> (cancel|discard) the (text|message) i was writing",
            "never mind don't send it",
        ]),
    ],
    "reminder": [
        ("CREATE_REMINDER", 6, [
            "<pls> remind [SL:PERSON_REMINDED <person_reminded> ] to [SL:TODO <todo> ] [SL:DATE_TIME <when> ]",
            "<pls> remind [SL:PERSON_REMINDED <person_reminded> ] [SL:DATE_TIME <when> ] to [SL:TODO <todo> ]",
            "<pls> set a reminder [SL:DATE_TIME <when> ] to [SL:TODO <todo> ]",
            "<pls> set a reminder to [SL:TODO <todo> ] [SL:DATE_TIME <when> ]",
            "<pls> create a reminder (for|about) [SL:TODO <todo_thing> ] [SL:DATE_TIME <when> ]",
            "<pls> remind [SL:PERSON_REMINDED <person_reminded> ] to [SL:TODO <todo> ] [SL:RECURRING_DATE_TIME <recurring> ]",
            "<pls> set a [SL:RECURRING_DATE_TIME <freq_adj> ] reminder to [SL:TODO <todo> ]",
            "<pls> add a reminder (for|about) [SL:TODO <todo_thing> ] [SL:DATE_TIME <when> ]",
            "don't let [SL:PERSON_REMINDED <person_reminded> ] forget to [SL:TODO <todo> ] [SL:DATE_TIME <when> ]",
            "[SL:PERSON_REMINDED i ] need a reminder to [SL:TODO <todo> ] [SL:DATE_TIME <when> ]",
            "<pls> remind [SL:PERSON_REMINDED <person_reminded> ] about [SL:TODO <todo_thing> ] [SL:DATE_TIME <when> ]",
        ]),
        ("GET_REMINDER", 2.5, [
            "<pls> [SL:METHOD_RETRIEVAL_REMINDER <retrieval> ] [SL:PERSON_REMINDED me ] [SL:AMOUNT all ] (my|the) reminders",
            "<pls> [SL:METHOD_RETRIEVAL_REMINDER <retrieval> ] [SL:PERSON_REMINDED me ] (my|the) reminders [SL:DATE_TIME <span> ]",
            "what reminders do [SL:PERSON_REMINDED i ] have [SL:DATE_TIME <span> ]",
            "do [SL:PERSON_REMINDED i ] have a reminder <todo_ref>",
            "<pls> [SL:METHOD_RETRIEVAL_REMINDER <retrieval> ] [SL:PERSON_REMINDED me ] the reminder <todo_ref>",
            "what are [SL:PERSON_REMINDED my ] reminders [SL:DATE_TIME <span> ]",
            "any reminders for [SL:PERSON_REMINDED <person_reminded> ] [SL:DATE_TIME <span> ]",
        ]),
        ("DELETE_REMINDER", 2.5, [
            "<pls> (delete|cancel|remove) (my|the) reminder <todo_ref>",
            "<pls> (delete|cancel|remove|clear) [SL:AMOUNT all ] [SL:PERSON_REMINDED my ] reminders [SL:DATE_TIME <span> ]",
            "<pls> (delete|cancel|remove) the reminder [SL:DATE_TIME <span> ] <todo_ref>",
            "<pls> (delete|cancel) [SL:PERSON_REMINDED my ] [SL:RECURRING_DATE_TIME <freq_adj> ] reminder <todo_ref>",
            "i don't need the reminder <todo_ref> anymore",
            "<pls> get rid of the [SL:ORDINAL (next|last|first) ] reminder",
        ]),
        ("UPDATE_REMINDER_DATE_TIME", 2, [
            "<pls> (change|move) (my|the) reminder <todo_ref> to [SL:DATE_TIME_NEW <new_when> ]",
            "<pls> (change|move|reschedule) the reminder [SL:DATE_TIME <span> ] to [SL:DATE_TIME_NEW <new_when> ]",
            "<pls> (push|move) [SL:PERSON_REMINDED my ] reminder <todo_ref> (back|up) to [SL:DATE_TIME_NEW <new_when> ]",
            "<pls> reschedule (my|the) [SL:TODO <todo_noun> ] reminder from [SL:DATE_TIME <clock> ] to [SL:DATE_TIME_NEW <clock> ]",
            "<pls> remind [SL:PERSON_REMINDED me ] (about|of) [SL:TODO <todo_thing> ] [SL:DATE_TIME_NEW <when> ] instead",
        ]),
        ("UPDATE_REMINDER_TODO", 1, [
            "<pls> change (my|the) reminder to [SL:TODO <todo_act> ] to [SL:TODO_NEW <todo_act> ] instead",
            "<pls> (update|edit) the [SL:TODO <todo_noun> ] reminder to say [SL:TODO_NEW <todo_act> ]",
            "<pls> change the reminder for [SL:DATE_TIME <day_rel> ] to [SL:TODO_NEW <todo_act> ]",
            "<pls> update my reminder to include [SL:TODO_NEW [IN:SEND_MESSAGE (texting|calling|emailing) [SL:RECIPIENT <contact> ] ] ]",
        ]),
        ("UPDATE_REMINDER", 1, [
            "<pls> add [SL:PERSON_REMINDED_ADDED <person> ] to the reminder (about|for) [SL:TODO <todo_thing> ]",
            "<pls> remove [SL:PERSON_REMINDED_REMOVED <person> ] from the reminder (about|for) [SL:TODO <todo_thing> ]",
            "<pls> make (my|the) [SL:TODO <todo_noun> ] reminder [SL:RECURRING_DATE_TIME_NEW <recurring> ] instead",
            "<pls> (change|update) the [SL:TODO <todo_noun> ] reminder (for|so it goes to) [SL:PERSON_REMINDED <person_reminded> ]",
        ]),
        ("GET_REMINDER_DATE_TIME", 1, [
            "when is [SL:PERSON_REMINDED my ] reminder <todo_ref>",
            "what time is [SL:PERSON_REMINDED my ] reminder <todo_ref>",
            "when is [SL:PERSON_REMINDED my ] [SL:ORDINAL (next|first|last) ] reminder",
            "what time (am|was) [SL:PERSON_REMINDED i ] supposed to [SL:TODO <todo_act> ]",
            "when (does|will) the [SL:TODO <todo_noun> ] reminder go off",
        ]),
        ("GET_REMINDER_LOCATION", 0.8, [
            "where is [SL:PERSON_REMINDED my ] reminder (for|about) [SL:TODO <todo_thing> ]",
            "what is the location of the [SL:TODO <todo_noun> ] reminder",
            "where (is|was) [SL:TODO <todo_thing> ] (in my reminder|supposed to be)",
            "where did [SL:PERSON_REMINDED i ] set the reminder for [SL:TODO <todo_thing> ]",
        ]),
        ("GET_REMINDER_AMOUNT", 0.8, [
            "how many reminders do [SL:PERSON_REMINDED i ] have [SL:DATE_TIME <span> ]",
            "how many [SL:TODO <todo_noun> ] reminders do [SL:PERSON_REMINDED i ] have",
            "how many reminders (are there|are set) [SL:DATE_TIME <span> ]",
            "count [SL:PERSON_REMINDED my ] reminders [SL:DATE_TIME <span> ]",
        ]),
        ("HELP_REMINDER", 0.6, [
            "how do i (set|make|create|change|delete) a reminder",
            "<pls> help me with (my|) reminders",
            "what can (the|) reminders do",
            "how do reminders work",
            "can i share my reminders with (my|) (family|friends|team)",
        ]),
    ],
    "event": [
        ("GET_EVENT", 8, [
            "<ask> what [SL:CATEGORY_EVENT <event_many> ] are (there|happening|going on) in [SL:LOCATION <city> ] [SL:DATE_TIME <span> ]",
            "<ask> are there any [SL:CATEGORY_EVENT <event_many> ] [SL:DATE_TIME <span> ]",
            "<ask> are there any [SL:ATTRIBUTE_EVENT <event_attr> ] [SL:CATEGORY_EVENT <event_many> ] in [SL:LOCATION <city> ]",
            "<pls> find [SL:CATEGORY_EVENT <event_many> ] at [SL:LOCATION <get_location> ] [SL:DATE_TIME <span> ]",
            "<pls> (find|show me|look up) [SL:ATTRIBUTE_EVENT <event_attr> ] [SL:CATEGORY_EVENT <event_many> ] [SL:DATE_TIME <span> ]",
            "[SL:CATEGORY_EVENT <event_many> ] (in|around) [SL:LOCATION <city> ] [SL:DATE_TIME <span> ]",
            "what's (happening|going on) (in|around) [SL:LOCATION <city> ] [SL:DATE_TIME <span> ]",
            "what's (happening|going on) [SL:LOCATION [IN:GET_LOCATION [SL:SEARCH_RADIUS <search_radius> ] [SL:LOCATION_USER <location_user> ] ] ] [SL:DATE_TIME <span> ]",
            "when is the [SL:NAME_EVENT <artist> ] [SL:CATEGORY_EVENT concert ] (in [SL:LOCATION <city> ]|)",
            "when do the [SL:NAME_EVENT <team> ] play [SL:DATE_TIME <span> ]",
            "<ask> when is [SL:ORGANIZER_EVENT <name_poss> ] [SL:CATEGORY_EVENT <event_mine> ]",
            "when is [SL:ORGANIZER_EVENT my ] [SL:ORDINAL next ] [SL:CATEGORY_EVENT <event_mine> ]",
            "what [SL:CATEGORY_EVENT <event_many> ] are at [SL:LOCATION <get_location> ] [SL:DATE_TIME <span> ]",
            "what can i do with [SL:ATTENDEE_EVENT <contact_group> ] [SL:DATE_TIME <span> ]",
            "are [SL:ATTENDEE_EVENT <contact_group> ] going to the [SL:CATEGORY_EVENT <event_one> ] [SL:DATE_TIME <span> ]",
            "is there a [SL:CATEGORY_EVENT <event_one> ] (at|in) [SL:LOCATION <loc_home> ] [SL:DATE_TIME <span> ]",
            "any [SL:CATEGORY_EVENT <event_many> ] (for|with) [SL:ATTRIBUTE_EVENT (kids|families|seniors|dogs|teens) ] [SL:DATE_TIME <span> ]",
            "<ask> where is the [SL:CATEGORY_EVENT <event_one> ] [SL:DATE_TIME <span> ]",
        ]),
    ],
    "navigation": [
        ("GET_INFO_TRAFFIC", 4, [
            "<ask> how's the traffic <traffic_loc> [SL:DATE_TIME <travel_when> ]",
            "<ask> is there (any|) traffic on [SL:PATH <path> ] [SL:DATE_TIME <travel_when> ]",
            "<ask> how is traffic (heading|going) to [SL:DESTINATION <dest> ]",
            "<ask> what's the traffic like from [SL:SOURCE <source> ] to [SL:DESTINATION <dest> ]",
            "are there any (accidents|delays|backups) on [SL:PATH <path> ]",
            "is traffic (bad|heavy|slow|moving) <traffic_loc> [SL:DATE_TIME <travel_when> ]",
            "<pls> check the traffic (on the way|) to [SL:DESTINATION <dest> ]",
            "will there be traffic if i [SL:METHOD_TRAVEL drive ] to [SL:DESTINATION <dest> ] [SL:DATE_TIME <travel_when> ]",
            "traffic (report|update) <traffic_loc>",
        ]),
        ("GET_ESTIMATED_DURATION", 3, [
            "how long (will it|does it) take to (get|go) to [SL:DESTINATION <dest> ]",
            "how long (will it|does it) take to get to [SL:DESTINATION <dest> ] (through|via|by way of) [SL:WAYPOINT <waypoint> ]",
            "how long (will it|does it) take to [SL:METHOD_TRAVEL <method_travel> ] to [SL:DESTINATION <dest> ] (from [SL:SOURCE <source> ]|)",
            "how long (is the drive|is the trip|is the ride) from [SL:SOURCE <source> ] to [SL:DESTINATION <dest> ]",
            "how long will it take me to get to [SL:DESTINATION <dest> ] if i leave [SL:DATE_TIME_DEPARTURE <travel_when> ]",
            "<ask> how long it takes to get to [SL:DESTINATION <dest> ] (using|via|on) [SL:PATH <path> ]",
            "what's the (drive|travel|commute) time to [SL:DESTINATION <dest> ]",
        ]),
        ("GET_DIRECTIONS", 3, [
            "<pls> (give me|get me|show me) directions to [SL:DESTINATION <dest> ]",
            "<pls> (take|navigate|get) me to [SL:DESTINATION <dest> ]",
            "how do i get to [SL:DESTINATION <dest> ] (from [SL:SOURCE <source> ]|)",
            "<pls> find the (fastest|best|shortest) route to [SL:DESTINATION <dest> ] (avoiding [SL:PATH_AVOID <path_avoid> ]|)",
            "<pls> (give me|show me) [SL:METHOD_TRAVEL (driving|walking|biking|transit) ] directions to [SL:DESTINATION <dest> ]",
            "what's the best way to get to [SL:DESTINATION <dest> ] without [SL:OBSTRUCTION_AVOID <obstruction> ]",
            "<pls> route me to [SL:DESTINATION <dest> ] (using|via|on) [SL:PATH <path> ]",
            "directions (to|for) [SL:DESTINATION <dest> ] <end>",
            "i need to be at [SL:DESTINATION <dest> ] [SL:DATE_TIME_ARRIVAL <arrive_by> ] how do i get there",
        ]),
        ("GET_DISTANCE", 2, [
            "how far is [SL:DESTINATION <dest> ] (from [SL:SOURCE <source> ]|)",
            "how far is it to [SL:DESTINATION <dest> ] if i stop (at|by) [SL:WAYPOINT <waypoint> ] (on the way|first)",
            "how many [SL:UNIT_DISTANCE <unit_distance> ] (is it|) from [SL:SOURCE <source> ] to [SL:DESTINATION <dest> ]",
            "<ask> how far (away|) [SL:DESTINATION <dest> ] is",
            "what's the distance (between|from) [SL:SOURCE <source> ] (and|to) [SL:DESTINATION <dest> ]",
            "how far (would i|do i have to) [SL:METHOD_TRAVEL (drive|walk|bike) ] to get to [SL:DESTINATION <dest> ]",
        ]),
        ("GET_ESTIMATED_ARRIVAL", 2, [
            "what time will i (get to|arrive at|reach) [SL:DESTINATION <dest> ] if i leave [SL:DATE_TIME_DEPARTURE <travel_when> ]",
            "when will i (get to|arrive at|reach) [SL:DESTINATION <dest> ]",
            "if i leave [SL:SOURCE <source> ] [SL:DATE_TIME_DEPARTURE <travel_when> ] when will i get to [SL:DESTINATION <dest> ]",
            "<ask> what's my (arrival time|expected arrival time) (at|for) [SL:DESTINATION <dest> ]",
            "will i make it to [SL:DESTINATION <dest> ] [SL:DATE_TIME_ARRIVAL <arrive_by> ]",
        ]),
        ("GET_ESTIMATED_DEPARTURE", 1.5, [
            "when should i leave for [SL:DESTINATION <dest> ] to (get there|arrive) [SL:DATE_TIME_ARRIVAL <arrive_by> ]",
            "when should i leave to (get to|make it to) [SL:DESTINATION <dest> ] [SL:DATE_TIME_ARRIVAL <arrive_by> ]",
            "what time (should|do) i (need to|) leave [SL:SOURCE <source> ] to (get to|reach) [SL:DESTINATION <dest> ] [SL:DATE_TIME_ARRIVAL <arrive_by> ]",
            "what time do i have to leave to be at [SL:DESTINATION <dest> ] [SL:DATE_TIME_ARRIVAL <arrive_by> ]",
            "when do i need to head out for [SL:DESTINATION <dest> ]",
        ]),
        ("GET_INFO_ROAD_CONDITION", 1.5, [
            "are the roads [SL:ROAD_CONDITION <road_condition> ] [SL:DATE_TIME <travel_when> ]",
            "is [SL:LOCATION <road> ] [SL:ROAD_CONDITION <road_condition> ] (right now|today|)",
            "are the roads to [SL:DESTINATION <dest> ] [SL:ROAD_CONDITION <road_condition> ]",
            "<ask> how are the road conditions (in|near) [SL:LOCATION <city> ] [SL:DATE_TIME <travel_when> ]",
            "is it safe to drive on [SL:LOCATION <road> ] (with the ice|in the snow|in this rain|)",
        ]),
        ("UPDATE_DIRECTIONS", 1.2, [
            "<pls> find (me|) a (faster|different|better|new) route",
            "<pls> reroute (me|) around [SL:OBSTRUCTION_AVOID <obstruction> ]",
            "<pls> change my route to avoid [SL:OBSTRUCTION_AVOID <obstruction> ]",
            "is there (another|a faster|a different) (route|way) (to avoid [SL:OBSTRUCTION_AVOID <obstruction> ]|)",
            "<pls> add a stop at (a|the) [SL:WAYPOINT_ADDED [IN:GET_LOCATION [SL:CATEGORY_LOCATION <place_category> ] ] ] (on my route|)",
            "<pls> avoid [SL:PATH_AVOID <path_avoid> ] on (my|this) route",
        ]),
        ("GET_INFO_ROUTE", 1, [
            "is there a [SL:WAYPOINT [IN:GET_LOCATION [SL:CATEGORY_LOCATION <place_category> ] ] ] on (my|the) (route|way) to [SL:DESTINATION <dest> ]",
            "will i pass (a|any) [SL:WAYPOINT [IN:GET_LOCATION [SL:CATEGORY_LOCATION <place_category> ] ] ] on the way to [SL:DESTINATION <dest> ]",
            "does my route to [SL:DESTINATION <dest> ] go through [SL:WAYPOINT <city> ]",
            "does (the|my) route (use|take) [SL:PATH <path> ]",
        ]),
        ("GET_LOCATION", 2.5, [
            "where is the [SL:LOCATION_MODIFIER <loc_modifier> ] [SL:CATEGORY_LOCATION <place_category> ]",
            "<pls> find (a|the) [SL:CATEGORY_LOCATION <place_category> ] [SL:SEARCH_RADIUS <search_radius> ] [SL:LOCATION_USER <location_user> ]",
            "where is [SL:POINT_ON_MAP <landmark> ]",
            "is there a [SL:CATEGORY_LOCATION <place_category> ] [SL:SEARCH_RADIUS <search_radius> ] [SL:POINT_ON_MAP <landmark> ]",
            "<pls> show me [SL:CATEGORY_LOCATION <place_category> ] (places|spots|) in [SL:LOCATION <city> ]",
            "what's the [SL:LOCATION_MODIFIER <loc_modifier> ] [SL:CATEGORY_LOCATION <place_category> ] (around here|nearby|)",
        ]),
        ("GET_LOCATION_HOME", 1, [
            "where does [SL:CONTACT <person> ] live",
            "where does [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] live",
            "what's [SL:CONTACT <name_poss> ] (home|) address",
            "<pls> (show me|find) [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation_poss> ] address",
        ]),
        ("GET_LOCATION_WORK", 0.8, [
            "where does [SL:CONTACT <person> ] work",
            "where does [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] work",
            "what's the address of [SL:CONTACT <name_poss> ] (office|work)",
        ]),
        ("GET_LOCATION_SCHOOL", 0.6, [
            "where does [SL:CONTACT <person> ] go to school",
            "where does [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION <relation> ] go to school",
            "what's the address of [SL:CONTACT <name_poss> ] school",
        ]),
    ],
}

DOMAINS = tuple(sorted(INTENTS))  # alarm event messaging music navigation reminder timer weather

_QUESTION_WORDS = frozenset(
    "what what's when where where's how how's is are do does did will can could who which "
    "any should has have would am was".split()
)
_MAX_N = 200_000  # more than any corpus needs; generate() refuses larger requests

# ----------------------------------------------------------------------------
# Engine

_PIECE_RE = re.compile(r"\([^()]*\)|\S+")


@lru_cache(maxsize=None)
def _pieces(template: str) -> tuple:
    """Template -> tuple of pieces: ('w', word) | ('s', symbol) | ('g', (alternatives...))."""
    out = []
    for piece in _PIECE_RE.findall(template):
        if piece.startswith("("):
            out.append(("g", tuple(alt.strip() for alt in piece[1:-1].split("|"))))
        elif piece.startswith("<") and piece.endswith(">"):
            name = piece[1:-1]
            if name not in SYMBOLS:
                raise KeyError(f"unknown symbol <{name}> in {template!r}")
            out.append(("s", name))
        else:
            out.append(("w", piece))
    return tuple(out)


def _expand(template: str, rng: random.Random, out: list[str]) -> None:
    for kind, value in _pieces(template):
        if kind == "w":
            out.append(value)
        elif kind == "s":
            _expand(rng.choice(SYMBOLS[value]), rng, out)
        else:
            _expand(rng.choice(value), rng, out)


def _is_label(token: str) -> bool:
    return token.startswith("[") or token == "]"


def _example(domain: str, intent: str, template: str, rng: random.Random) -> Example:
    tokens = ["[IN:" + intent]
    _expand(template, rng, tokens)
    tokens.append("]")
    words = [t for t in tokens if not _is_label(t)]
    utterance = " ".join(words)
    if words[0] in _QUESTION_WORDS or (len(words) > 1 and words[0] == "hey" and words[1] in _QUESTION_WORDS):
        utterance += "?"
    return Example(domain, utterance, " ".join(tokens))


def _intent_tables():
    """Per domain: (intent labels, cumulative weights, template lists)."""
    tables = {}
    for domain in DOMAINS:
        rows = INTENTS[domain]
        cum, total = [], 0.0
        for _, weight, _ in rows:
            total += weight
            cum.append(total)
        tables[domain] = ([r[0] for r in rows], cum, [r[2] for r in rows])
    return tables


_TABLES = _intent_tables()


def generate(n: int, seed: int) -> list[Example]:
    """n examples with pairwise-distinct utterances, deterministic for (n, seed).

    Domains are drawn uniformly, intents by weight within a domain, templates
    uniformly. Raises ValueError when n distinct examples cannot be produced
    (n negative, above the supported maximum, or the grammar runs dry).
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, not {n!r}")
    if n > _MAX_N:
        raise ValueError(f"the grammar supports at most {_MAX_N} distinct examples, {n} asked")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Example] = []
    misses, max_misses = 0, 2_000
    while len(out) < n:
        # The domain is drawn once per example and kept while retrying a
        # duplicate, so domains stay balanced even where short templates run dry.
        domain = DOMAINS[rng.randrange(len(DOMAINS))]
        labels, cum, templates = _TABLES[domain]
        for _ in range(50):
            i = _bisect(cum, rng.random() * cum[-1])
            ex = _example(domain, labels[i], rng.choice(templates[i]), rng)
            key = ex.utterance.rstrip("?")
            if key not in seen:
                seen.add(key)
                out.append(ex)
                misses = 0
                break
        else:
            misses += 1
            if misses > max_misses:
                raise ValueError(f"could only produce {len(out)} distinct examples, {n} asked")
    return out


def _bisect(cum: list[float], x: float) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


# ----------------------------------------------------------------------------
# Coverage statistics (by enumeration of the grammar)

_CAP = 20_000  # enumeration stops growing a set of texts beyond this size


def _top_templates():
    for domain in DOMAINS:
        for intent, _, templates in INTENTS[domain]:
            for template in templates:
                yield domain, intent, template


def _reachable_fragments() -> list[str]:
    """Every template and symbol alternative reachable from the intents, in a fixed order."""
    fragments, seen_syms = [], set()
    stack = [t for _, _, t in _top_templates()]
    while stack:
        fragment = stack.pop(0)
        fragments.append(fragment)
        for kind, value in _pieces(fragment):
            if kind == "g":
                stack.extend(value)
            elif kind == "s" and value not in seen_syms:
                seen_syms.add(value)
                stack.extend(SYMBOLS[value])
    return fragments


def reachable_symbols() -> list[str]:
    names = []
    for fragment in _reachable_fragments():
        for kind, value in _pieces(fragment):
            if kind == "s" and value not in names:
                names.append(value)
    return names


@lru_cache(maxsize=None)
def _symbol_texts(name: str) -> tuple:
    out: dict[str, None] = {}
    for alt in SYMBOLS[name]:
        for text in _texts(alt):
            out[text] = None
            if len(out) >= _CAP:
                return tuple(out)
    return tuple(out)


@lru_cache(maxsize=None)
def _texts(fragment: str) -> tuple:
    """Distinct word strings a fragment can produce (labels dropped), up to _CAP."""
    partial = [""]
    for kind, value in _pieces(fragment):
        if kind == "w":
            options = ("",) if _is_label(value) else (value,)
        elif kind == "s":
            options = _symbol_texts(value)
        else:
            merged: dict[str, None] = {}
            for alt in value:
                merged.update(dict.fromkeys(_texts(alt)))
            options = tuple(merged)
        nxt: dict[str, None] = {}
        for head in partial:
            for tail in options:
                nxt[(head + " " + tail).strip()] = None
                if len(nxt) >= _CAP:
                    break
            if len(nxt) >= _CAP:
                break
        partial = list(nxt)
    return tuple(partial)


def _slot_spans(fragment: str):
    """(label, inner fragment) for each slot opened and closed in the fragment."""
    tokens = [p for p in _PIECE_RE.findall(fragment)]
    stack = []
    for i, tok in enumerate(tokens):
        if tok.startswith("[SL:") or tok.startswith("[IN:"):
            stack.append((tok, i))
        elif tok == "]":
            if not stack:
                raise ValueError(f"unbalanced ']' in {fragment!r}")
            label, start = stack.pop()
            if label.startswith("[SL:"):
                yield label[1:], " ".join(tokens[start + 1 : i])
    if stack:
        raise ValueError(f"unclosed node in {fragment!r}")


@lru_cache(maxsize=None)
def _symbol_depth(name: str) -> int:
    return max(_depth(alt) for alt in SYMBOLS[name])


@lru_cache(maxsize=None)
def _depth(fragment: str) -> int:
    """Deepest intent nesting a fragment can produce (intents opened in it count)."""
    best, open_intents, stack = 0, 0, []
    for kind, value in _pieces(fragment):
        below = 0
        if kind == "w":
            if value.startswith("[IN:"):
                open_intents += 1
                stack.append(True)
            elif value.startswith("[SL:"):
                stack.append(False)
            elif value == "]" and stack and stack.pop():
                open_intents -= 1
        elif kind == "s":
            below = _symbol_depth(value)
        else:
            below = max(_depth(alt) for alt in value)
        best = max(best, open_intents + below)
    return best


def stats() -> dict:
    """Coverage of the grammar, by enumeration (slot_values is capped per slot
    at 20,000 texts, so it is a lower bound)."""
    fragments = _reachable_fragments()
    intents = {intent for _, intent, _ in _top_templates()}
    slots = set()
    slot_texts: dict[str, None] = {}
    for fragment in fragments:
        for kind, value in _pieces(fragment):
            if kind == "w" and value.startswith("[IN:"):
                intents.add(value[4:])
            elif kind == "w" and value.startswith("[SL:"):
                slots.add(value[4:])
        for _, inner in _slot_spans(fragment):
            slot_texts.update(dict.fromkeys(_texts(inner)))
    templates = list(dict.fromkeys(t for _, _, t in _top_templates()))
    return {
        "domains": len(DOMAINS),
        "intents": len(intents),
        "slots": len(slots),
        "slot_values": len(slot_texts),
        "carrier_phrases": len(templates),
        "max_depth": 1 + max(_depth(t) for t in templates),
    }
