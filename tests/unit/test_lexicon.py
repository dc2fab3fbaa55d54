"""Lexicons: files, matching rules (whole words, case), scopes (narrower wins), and the per-backend form."""

from __future__ import annotations

import pytest

from demod_voice.errors import InputError
from demod_voice.speech_text import scopes
from demod_voice.speech_text.lexicon import Lexicon, LexiconStore, entry, merge, parse, split_words
from demod_voice.speech_text.prepare import TextOptions, for_job
from demod_voice.speech_text.script import Override


def lex(*entries):
    return Lexicon(tuple(entry(*e) for e in entries))


def test_tsv_and_yaml_files_read_the_same_entries():
    tsv = "# comment\nNguyen\tŋwˈiən\tnew yen\nUS\tjˌuːˈɛs\tyou ess\tmatch_case\n"
    yaml_text = ("entries:\n  - {word: Nguyen, phonemes: ŋwˈiən, say: new yen}\n"
                 "  - {word: US, phonemes: jˌuːˈɛs, say: you ess, match_case: true}\n")
    assert parse(tsv, "tsv", "t").entries == parse(yaml_text, "yaml", "y").entries
    assert parse("Nguyen: ŋwˈiən\n", "yaml", "m").entries[0].phonemes == "ŋwˈiən"


@pytest.mark.parametrize(("text", "fmt", "says"), [
    ("Nguyen\n", "tsv", "needs phonemes (for Piper) or a respelling"),
    ("a\tb\tc\td\te\n", "tsv", "line 1"),
    ("x\ty\t\tloud\n", "tsv", "unknown flag"),
    ("x\t[[y]]\n", "tsv", "brackets"),
    ("entries: [{word: x, colour: red, say: y}]", "yaml", "unknown field"),
    ("entries: [1, 2]", "yaml", "entry 1 must be a mapping"),
    ("a: [b", "yaml", "not valid YAML at line 1"),
])
def test_bad_lexicon_files_say_what_is_wrong(text, fmt, says):
    with pytest.raises(InputError, match=None) as caught:
        parse(text, fmt, "lexicon test")
    assert says in str(caught.value)


def test_words_match_whole_and_case_insensitively_unless_told():
    lexicon = lex(("Nguyen", "ŋwˈiən", "new yen"), ("US", "jˌuːˈɛs", "you ess", True), ("New York", "", "noo york"))
    parts = split_words("NGUYEN met Nguyenson in the US with us in new  york.", lexicon)
    overrides = [p.written for p in parts if isinstance(p, Override)]
    assert overrides == ["NGUYEN", "US", "new  york"]
    assert "Nguyenson" in "".join(p for p in parts if isinstance(p, str))


def test_exact_case_wins_over_any_case_and_longest_wins():
    lexicon = lex(("read", "", "reed"), ("READ", "", "R E A D", True), ("York", "", "yawk"), ("New York", "", "noo york"))
    said = for_job("read READ New York York", "en", TextOptions(lexicon=lexicon), False).text
    assert said == "reed R E A D noo york yawk"


def test_narrower_scope_wins(tmp_path):
    store = LexiconStore(tmp_path)
    store.add("default", entry("tomato", "", "server"))
    store.add("extra", entry("tomato", "", "configured"))
    store.add("voice.joe", entry("tomato", "", "voice"))
    store.add("key.abcd1234", entry("tomato", "", "key"))
    layers = {"server": {}, "voice": {"voice": "joe"}, "key": {"voice": "joe", "key_id": "abcd1234"},
              "request": {"voice": "joe", "key_id": "abcd1234", "own": scopes.request_lexicon({"tomato": {"say": "request"}})}}
    for expected, kwargs in layers.items():
        options = scopes.reading(store, **kwargs)
        assert for_job("tomato", "en", options, False).text == expected
    assert for_job("tomato", "en", scopes.reading(store, server=["extra"]), False).text == "configured"


def test_merge_replaces_by_key_and_keeps_the_rest():
    merged = merge(lex(("a", "", "one"), ("b", "", "two")), lex(("A", "", "uno")))
    assert [(e.word, e.respell) for e in merged.entries] == [("b", "two"), ("A", "uno")]


def test_store_add_remove_list(tmp_path):
    store = LexiconStore(tmp_path)
    store.add("names", entry("Nguyen", "ŋwˈiən", "new yen"))
    assert store.names() == ["names"] and store.load("names").entries[0].respell == "new yen"
    assert store.remove("names", "nguyen") and not store.remove("names", "nguyen")
    with pytest.raises(InputError):
        store.load("../etc/passwd")


def test_piper_gets_phonemes_xtts_gets_the_respelling_and_a_phoneme_only_entry_warns_on_xtts():
    options = TextOptions(lexicon=lex(("Nguyen", "ŋwˈiən", "new yen"), ("Siobhan", "ʃɪvˈɔːn", "")))
    assert for_job("Hi Nguyen and Siobhan", "en", options, True).text == "Hi [[ŋwˈiən]] and [[ʃɪvˈɔːn]]"
    xtts = for_job("Hi Nguyen and Siobhan", "en", options, False)
    assert xtts.text == "Hi new yen and Siobhan" and any("Siobhan" in w for w in xtts.warnings)


def test_a_phoneme_the_voice_does_not_know_is_refused():
    options = TextOptions(lexicon=lex(("x", "ʘ", "")))
    with pytest.raises(InputError, match="does not know"):
        for_job("x", "en", options, True, known_phonemes={"a", "b"})


def test_lexicon_words_are_not_normalised():
    options = TextOptions(lexicon=lex(("Dr.", "", "drive")))
    assert for_job("Dr. 5", "en", options, False).text == "drive five"


def test_a_lexicon_file_that_is_not_there_is_named_as_a_missing_file(tmp_path):
    """``--lexicon /x/nosuch.tsv`` said "'/x/nosuch.tsv' is not a lexicon name: letters, digits...". """
    store = LexiconStore(tmp_path / "lexicons")
    for name in (str(tmp_path / "nosuch.tsv"), str(tmp_path / "sub" / "names")):
        with pytest.raises(InputError, match="not found: give a .tsv or .yaml file") as caught:
            scopes.named_or_file(store, name)
        assert "is not a lexicon name" not in str(caught.value)
    with pytest.raises(InputError, match="there is no lexicon 'names'"):
        scopes.named_or_file(store, "names")


def test_a_word_matches_however_unicode_and_apostrophes_write_it():
    """"Nguyễn" typed decomposed (NFD) missed the composed entry and a curly O’Brien missed O'Brien; adding "Chloé" both
    ways made two entries that look alike."""
    import unicodedata

    lexicon = lex(("Nguyễn", "", "win"), ("O'Brien", "", "oh bryan"))
    text = unicodedata.normalize("NFD", "Mr. Nguyễn met O’Brien and O'Brien.")
    assert [p.respell for p in split_words(text, lexicon) if isinstance(p, Override)] == ["win", "oh bryan", "oh bryan"]
    both = merge(lex((unicodedata.normalize("NFD", "Chloé"), "", "klo-ay")), lex(("Chloé", "", "klo-eh")))
    assert [(e.word, e.respell) for e in both.entries] == [("Chloé", "klo-eh")]


def test_a_word_starting_with_a_hash_is_refused_not_lost(tmp_path):
    """A lexicon file's '#' starts a comment: "#hash" was said added, then never read back (nor removable)."""
    with pytest.raises(InputError, match="may not start with '#'"):
        LexiconStore(tmp_path).add("tags", entry("#hash", "", "hashtag"))


@pytest.mark.parametrize("value", ["false", "no", "0", 1])
def test_match_case_that_is_not_true_or_false_is_refused(value):
    """``{"match_case": "false"}`` (JSON over HTTP, a quoted YAML value) made the entry match its exact case only: the
    string was taken as true."""
    with pytest.raises(InputError, match="match_case true or false"):
        scopes.request_lexicon({"US": {"say": "you ess", "match_case": value}})
    assert parse("entries: [{word: US, say: you ess, match_case: false}]", "yaml", "y").entries[0].match_case is False
    assert parse("entries: [{word: US, say: you ess, match_case: null}]", "yaml", "y").entries[0].match_case is False


def test_a_lexicon_file_saved_with_a_byte_order_mark_reads_and_one_not_in_utf8_says_so(tmp_path):
    """Notepad and Excel save UTF-8 with a byte order mark: its first word was refused as "a word must be 1 to 100
    printable characters"; a UTF-16 file said only "(UnicodeDecodeError)"."""
    from demod_voice.speech_text.lexicon import read_file

    for name, text in (("names.tsv", "Nguyen\tŋwˈiən\tnew yen\n"), ("names.yaml", "entries:\n  - {word: Nguyen, say: new yen}\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8-sig")
        assert [e.word for e in read_file(path).entries] == ["Nguyen"]
    assert [e.word for e in parse("\ufeffNguyen\tŋwˈiən\n", "tsv", "t").entries] == ["Nguyen"]
    wide = tmp_path / "wide.tsv"
    wide.write_text("Nguyen\tŋwˈiən\n", encoding="utf-16")
    with pytest.raises(InputError) as caught:
        read_file(wide)
    assert str(caught.value) == "lexicon wide.tsv is not UTF-8 text; save it as UTF-8"


def test_words_in_scripts_written_without_spaces_match():
    """Chinese and Japanese put no space between words: "重庆" in "我去重庆了" and "OpenAI" in "我喜欢OpenAI的产品" were
    never matched, as if inside a longer word (every ideograph counts as a letter of one)."""
    lexicon = lex(("重庆", "", "Chongqing"), ("OpenAI", "", "Open A I"), ("東京", "", "Tokyo"))
    assert for_job("我去重庆了。我喜欢OpenAI的产品。", "zh-cn", TextOptions(lexicon=lexicon), False).text == (
        "我去Chongqing了。我喜欢Open A I的产品。")
    assert for_job("東京へ行きます", "ja", TextOptions(lexicon=lexicon), False).text == "Tokyoへ行きます"
    # still whole words among letters and digits of other scripts
    assert for_job("OpenAIs OpenAI2 xOpenAI", "en", TextOptions(lexicon=lexicon), False).text == "OpenAIs OpenAI2 xOpenAI"


def test_a_word_written_in_two_scripts_matches():
    """Words of Chinese and Japanese mix scripts ("卡拉OK", "Tシャツ", "3D打印"): text was looked at one script at a time
    (the runs between scripts), so such an entry never matched, not even as the whole text."""
    lexicon = lex(("卡拉OK", "", "kala oukei"), ("Tシャツ", "", "tii shatsu"), ("3D打印", "", "san di da yin"))
    options = TextOptions(lexicon=lexicon, normalize=False)
    assert for_job("我们去唱卡拉OK吧", "zh-cn", options, False).text == "我们去唱kala oukei吧"
    assert for_job("Tシャツを買った", "ja", options, False).text == "tii shatsuを買った"
    assert for_job("我喜欢3D打印。", "zh-cn", options, False).text == "我喜欢san di da yin。"
    assert for_job("卡拉OKs xTシャツ", "zh-cn", options, False).text == "卡拉OKs xTシャツ"  # still whole words


def test_a_lexicon_of_the_most_entries_reads_a_text_at_once():
    """A lexicon may hold 10,000 entries (MAX_ENTRIES); one pattern of them all took 4 s to compile and 0.8 s more for
    every thousand characters read (20 minutes more for a book of a million characters). Only entries whose first word
    the text holds are looked for; the result is the same."""
    import random
    import string
    import time

    rng = random.Random(7)
    words = {"".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12))) for _ in range(9990)}
    lexicon = Lexicon(tuple(entry(w, "", "zork") for w in sorted(words)) + tuple(
        entry(*e) for e in (("New York", "", "big apple"), ("New", "", "knew"), ("US", "", "you ess", True), ("重庆", "", "Chongqing"))))
    text = "We flew from New York to the US, then to new towns and 重庆. " * 160
    started = time.perf_counter()
    said = for_job(text, "en", TextOptions(lexicon=lexicon), False).text
    assert time.perf_counter() - started < 3.0  # under a second here; a pattern of every entry took 10 s
    assert said.startswith("We flew from big apple to the you ess, then to knew towns and Chongqing. ")


def test_a_phoneme_the_voice_does_not_know_is_named_so_that_it_can_be_seen():
    """An unknown combining mark (a diaeresis, a tie bar) was printed alone after a space, where it shows as nothing or
    over the space: "uses phoneme(s) ̈ that this voice does not know". Each is named by its code point too."""
    options = TextOptions(lexicon=lex(("Zorb", "zˈɔː\u0308b", "")))
    with pytest.raises(InputError) as caught:
        for_job("Zorb", "en", options, True, known_phonemes=set("zˈɔːb"))
    assert "uses phoneme(s) '\u0308' (U+0308) that this voice does not know" in str(caught.value)


@pytest.mark.parametrize(("text", "word"), [("No: nˈoʊ\n", "false"), ("entries: [{word: On, say: on tario}]", "true"),
                                            ("007: dˈʌbəl ˈoʊ sˈɛvən\n", "7")])
def test_a_word_yaml_reads_as_true_false_or_a_number_says_to_quote_it(text, word):
    """YAML 1.1 reads No, Yes, On and Off as true or false, and 007 as 7: "No: nˈoʊ" said "'False': a word must be 1 to
    100 printable characters", naming a word the user never wrote."""
    with pytest.raises(InputError) as caught:
        parse(text, "yaml", "lexicon names.yaml")
    assert f"the word was read as {word}, not as text" in str(caught.value) and "put it in quotes" in str(caught.value)


def test_a_tsv_line_written_with_spaces_for_tabs_says_to_use_tabs():
    """An editor that turns tabs into spaces made "Nguyen  ŋwˈiən  new yen" one word with no pronunciation: the error
    named that whole line as the word and asked for phonemes it could see."""
    with pytest.raises(InputError) as caught:
        parse("Nguyen  ŋwˈiən  new yen\n", "tsv", "lexicon names.tsv")
    assert str(caught.value) == ("lexicon names.tsv, line 1: no TAB in 'Nguyen  ŋwˈiən  new yen'; separate the word, its "
                                 "phonemes and its respelling with TABs, not spaces")


@pytest.mark.parametrize("text", ["Call Dr. Nguyen now.", "We flew to St. Louis today.", "Elm Dr. Nguyen is here.",
                                  "Main St. She left Nguyen.", "No. 5 Nguyen", "Chapter 01 Nguyen", "King Louis XIV was king."])
def test_text_around_a_lexicon_word_is_read_as_around_any_word(text):
    """The text on each side of a lexicon word was normalised alone: "Call Dr. Nguyen now." was "Call drive. new yen
    now." (no capital after "Dr." in its run, and a full stop added), "St. Louis" was "street. Louis". With entries
    that say each word as written, the reading is the one without a lexicon."""
    same = lex(("Nguyen", "", "Nguyen"), ("Louis", "", "Louis"))
    assert for_job(text, "en", TextOptions(lexicon=same), False).text == for_job(text, "en", TextOptions(), False).text


@pytest.mark.parametrize("text, fmt, says", [
    ("# names\nNguyen\tŋwˈiən\tnew yen\nZorb\t\tzork\nnguyen\t\twin\n", "tsv", "lexicon names.tsv, line 4: 'nguyen' is "
     "listed twice with different pronunciations (also at line 2); keep one of the two"),
    ("entries:\n  - {word: Nguyen, say: new yen}\n  - {word: NGUYEN, say: win}\n", "yaml", "lexicon names.tsv, entry 2: "
     "'NGUYEN' is listed twice with different pronunciations (also at entry 1); keep one of the two"),
    ('{"Nguyen": {"say": "new yen"}, "NGUYEN": {"say": "win"}}', "yaml", "lexicon names.tsv: 'NGUYEN' is listed twice "
     "with different pronunciations (also as 'Nguyen'); keep one of the two"),
])
def test_a_word_listed_twice_with_different_pronunciations_names_both_places(text, fmt, says):
    """A file with the same word on two lines read the last one silently: an edit of the first line changed nothing,
    and which of the two was meant cannot be told from the file."""
    with pytest.raises(InputError) as caught:
        parse(text, fmt, "lexicon names.tsv")
    assert str(caught.value) == says


@pytest.mark.parametrize("text, says", [
    ("Nguyen: ŋwˈiən\nZorb: zˈɔːɹb\nNguyen: wˈin\n", "line 3: 'Nguyen' is listed twice with different pronunciations "
     "(also at line 1)"),
    ('{"Nguyen": {"say": "new yen"},\n "Nguyen": {"say": "win"}}', "line 2: 'Nguyen' is listed twice with different "
     "pronunciations (also at line 1)"),
    ("entries:\n  - word: Nguyen\n    say: new yen\n    say: win\n", "line 4: 'say' is given twice with different values "
     "(also at line 3)"),
])
def test_a_yaml_key_given_twice_names_both_lines(text, says):
    """PyYAML keeps a mapping's last value for a key given twice: the first line's pronunciation was dropped silently."""
    with pytest.raises(InputError) as caught:
        parse(text, "yaml", "lexicon names.yaml")
    assert str(caught.value) == f"lexicon names.yaml, {says}; keep one of the two"
    assert [e.respell for e in parse("Nguyen: {say: new yen}\nNguyen: {say: new yen}\n", "yaml", "x").entries] == ["new yen"]


def test_a_word_listed_twice_the_same_way_or_in_another_case_flag_is_read():
    """Only a conflict is an error: the same line twice is one entry, and a match_case entry beside an any-case one is
    two different entries (``US`` the country, ``us`` the word)."""
    same = parse("Nguyen\t\tnew yen\nNguyen\t\tnew yen\n", "tsv", "lexicon names.tsv")
    assert [e.respell for e in same.entries] == ["new yen"]
    both = parse("US\t\tyou ess\tmatch_case\nus\t\tuss\n", "tsv", "lexicon names.tsv")
    assert [(e.word, e.respell) for e in both.entries] == [("US", "you ess"), ("us", "uss")]


@pytest.mark.parametrize("text, fmt", [("nice\t\tneese\tmatch_case\nNice\t\tneece\n", "tsv"),
                                       ("entries:\n  - {word: Nice, say: neece}\n  - {word: nice, say: neese, match_case: true}\n",
                                        "yaml")])
def test_a_match_case_entry_and_an_any_case_entry_whose_words_fold_alike_are_two_entries(text, fmt):
    """``nice`` only in that case and ``Nice`` in any case were refused as one word listed twice: each is read as its
    flag says, the exact case first."""
    lexicon = parse(text, fmt, "lexicon names.tsv")
    assert sorted((e.word, e.match_case) for e in lexicon.entries) == [("Nice", False), ("nice", True)]
    said = for_job("Nice is nice, NICE.", "en", TextOptions(lexicon=lexicon), False).text
    assert said == "neece is neese, neece."


@pytest.mark.parametrize("word, text", [("Straße", "die STRASSE"), ("Straße", "die Strasse"), ("Strasse", "die Straße"),
                                        ("Gauß", "GAUSS"), ("İzmir", "IZMIR"), ("İzmir", "izmir"), ("Izmir", "İZMİR"),
                                        ("istanbul", "İstanbul"), ("Istanbul", "ıstanbul")])
def test_a_word_matches_in_any_case_as_unicode_folds_it(word, text):
    """A regex's case-insensitive match folds one letter to one letter: ``Straße`` never matched ``STRASSE`` (as German
    writes it in capitals), nor ``İzmir`` the same name typed in capitals or without Turkish letters."""
    parts = split_words(text, lex((word, "", "said")))
    assert [p.written for p in parts if isinstance(p, Override)] == [text.split()[-1]]


def test_folding_keeps_words_whole_and_match_case_exact():
    """``ss`` for ``ß`` does not let a word run on (``Gausss``), and a match_case entry keeps its own letters."""
    assert split_words("Gausss and Gauss-Seidel", lex(("Gauß", "", "gowss")))[1:] == [Override("Gauss", "", "gowss", "lexicon"), "-Seidel"]
    assert split_words("STRASSE", lex(("Straße", "", "x", True))) == ["STRASSE"]


def test_a_word_given_twice_with_values_of_nested_aliases_is_compared_in_time():
    """A 1 KB YAML lexicon giving one key twice, as two equal lists of ten aliases of ten aliases... (ten levels): the
    check that the two values differ walked every alias again at every level, 10**10 steps (minutes of a core per upload)."""
    import time

    lines = ["a0: &a0 [x]", "b0: &b0 [x]"]
    for level in range(1, 11):
        lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]",
                  f"b{level}: &b{level} [{', '.join([f'*b{level - 1}'] * 10)}]"]
    text = "\n".join([*lines, "w: *a10", "w: *b10"])
    started = time.monotonic()
    with pytest.raises(InputError, match="'a0' needs phonemes"):  # the two are equal: the entries are judged next
        parse(text, "yaml", "names.yaml")
    assert time.monotonic() - started < 5
    with pytest.raises(InputError, match="'Nguyen' is listed twice with different pronunciations"):
        parse("Nguyen: [a, [b]]\nNguyen: [a, [c]]\n", "yaml", "names.yaml")
