"""Keywords and replies (pure): what a message amounts to, and what we answer."""

from __future__ import annotations

import unicodedata

import pytest

from messages import (
    KEYWORDS,
    REPLIES,
    Keyword,
    Reply,
    guess_language,
    parse_keyword,
    reply_language,
    reply_text,
    segments,
)
from messages.keywords import Match, normalize, telling_language


@pytest.mark.parametrize(
    ("word", "keyword"),
    [
        *[(w, Keyword.STOP) for w in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")],
        *[(w, Keyword.START) for w in ("START", "YES", "UNSTOP")],
        *[(w, Keyword.HELP) for w in ("HELP", "INFO")],
    ],
)
def test_twilios_default_words(word: str, keyword: Keyword) -> None:
    assert parse_keyword(word) == Match(keyword, "en")
    assert parse_keyword(word.lower()) == Match(keyword, "en")


def test_every_keyword_has_lao_and_thai_words() -> None:
    for keyword, by_language in KEYWORDS.items():
        assert {"en", "lo", "th"} <= set(by_language), keyword
        for language, words in by_language.items():
            for word in words:
                found = parse_keyword(word)
                assert found is not None and found.keyword is keyword, word
                assert found.language == language, word
                if language in {"lo", "th", "km", "my"}:
                    assert guess_language(word) == language, word


def test_no_word_means_two_things() -> None:
    seen: dict[str, Keyword] = {}
    for keyword, by_language in KEYWORDS.items():
        for words in by_language.values():
            for word in words:
                assert seen.setdefault(normalize(word), keyword) is keyword, word


@pytest.mark.parametrize(
    ("body", "keyword", "language"),
    [
        ("  stop  ", Keyword.STOP, "en"),
        ("Stop.", Keyword.STOP, "en"),
        ("S T O P !!", Keyword.STOP, "en"),
        ("stop 🙏", Keyword.STOP, "en"),
        ("\u200bSTOP\u200b", Keyword.STOP, "en"),  # zero-width spaces pasted from a chat app
        ("ＳＴＯＰ", Keyword.STOP, "en"),  # full-width, from a Chinese keyboard
        ("ຊ່ວຍເຫລືອ", Keyword.HELP, "lo"),  # ຫຼ typed the older way
        ("ຢຸດ", Keyword.STOP, "lo"),
        ("ຢຸດ ແດ່", Keyword.STOP, "lo"),  # with a polite particle
        ("หยุด", Keyword.STOP, "th"),
        ("หยุดค่ะ", Keyword.STOP, "th"),
        ("ยกเลิก!", Keyword.STOP, "th"),
        ("ใช่ครับ", Keyword.START, "th"),
        ("ເລີ່ມ", Keyword.START, "lo"),
        ("ຊ່ວຍເຫຼືອ", Keyword.HELP, "lo"),
        ("ช่วยเหลือ", Keyword.HELP, "th"),
        ("Dừng", Keyword.STOP, "vi"),
        ("ឈប់", Keyword.STOP, "km"),
        ("ရပ်", Keyword.STOP, "my"),
        ("stop please", None, None),  # Twilio's rule: the whole message is the keyword
        ("ຢຸດສົ່ງຂ່າວໃຫ້ຂ້ອຍແນວໃດ", None, None),
        ("", None, None),
        ("  ...  ", None, None),
    ],
)
def test_matching_ignores_case_space_punctuation_and_particles(
    body: str, keyword: Keyword | None, language: str | None
) -> None:
    found = parse_keyword(body)
    if keyword is None:
        assert found is None
    else:
        assert found == Match(keyword, str(language))


def test_other_spellings_of_the_same_text_match() -> None:
    # NFD (a Vietnamese keyboard), and Lao HO MO typed as two letters (ຫ + ມ).
    assert parse_keyword(unicodedata.normalize("NFD", "dừng")) == Match(Keyword.STOP, "vi")
    assert parse_keyword("ສະຫມັກ village-1") == Match(Keyword.JOIN, "lo", "village-1")
    assert parse_keyword("ສະໝັກ village-1") == Match(Keyword.JOIN, "lo", "village-1")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("JOIN village-12", Match(Keyword.JOIN, "en", "village-12")),
        ("join  Village-12 ", Match(Keyword.JOIN, "en", "village-12")),
        ("JOIN: village_12.", Match(Keyword.JOIN, "en", "village_12")),
        ("LEAVE village-12", Match(Keyword.LEAVE, "en", "village-12")),
        ("ເຂົ້າຮ່ວມ village-12", Match(Keyword.JOIN, "lo", "village-12")),
        ("ເຂົ້າຮ່ວມvillage-12", Match(Keyword.JOIN, "lo", "village-12")),  # no space in Lao
        ("ເຂົ້າຮ່ວມ village-໑໒", Match(Keyword.JOIN, "lo", "village-12")),  # Lao digits
        ("ອອກຈາກ village-12", Match(Keyword.LEAVE, "lo", "village-12")),
        ("ອອກ village-12", Match(Keyword.LEAVE, "lo", "village-12")),
        ("เข้าร่วม VILLAGE-12", Match(Keyword.JOIN, "th", "village-12")),
        ("ออกจากvillage-12", Match(Keyword.LEAVE, "th", "village-12")),
        ("tham gia village-12", Match(Keyword.JOIN, "vi", "village-12")),
        ("JOIN", Match(Keyword.JOIN, "en")),  # the word alone: we say how
        ("ອອກ", Match(Keyword.LEAVE, "lo")),
        ("joining", None),  # a Latin word needs a gap before the code
        ("join us at the clinic", None),  # one code, not a sentence
        ("ออกไปทำงาน", None),  # "went out to work": no slug follows
        ("leave me alone", None),
    ],
)
def test_join_and_leave_take_a_community_code(body: str, expected: Match | None) -> None:
    assert parse_keyword(body) == expected


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("ສະບາຍດີ", "lo"),
        ("สวัสดี", "th"),
        ("សួស្តី", "km"),
        ("မင်္ဂလာပါ", "my"),
        ("hello", "en"),
        ("Xin chào", "en"),  # Latin script alone says nothing more
        ("COVID ຢູ່ໃສ", "lo"),
    ],
)
def test_guess_language_by_script(text: str, language: str) -> None:
    assert guess_language(text) == language


def test_every_language_has_every_reply_and_they_stay_short() -> None:
    assert {"en", "lo", "th", "km", "vi", "my"} <= set(REPLIES)
    for language, texts in REPLIES.items():
        assert set(texts) == set(Reply), language
        for reply in Reply:
            text = reply_text(
                reply, language, hotline="1166", community="Ban Nongbua Village", code="nongbua-12"
            )
            assert "{" not in text and "}" not in text, (language, reply)
            # Twilio's Advanced Opt-Out may answer too: ours stay within two SMS segments.
            assert segments(text).parts <= 2, (language, reply, segments(text))
            if language in {"lo", "th", "km", "my"}:
                assert guess_language(text) == language, (language, reply)
        help_text = reply_text(Reply.HELP, language, hotline="1166")
        assert "1166" in help_text, language


def test_replies_fall_back_to_english() -> None:
    assert reply_language("lo-LA") == "lo"
    assert reply_language("zh", "th") == "th"
    assert reply_language("zh", None) == "en"
    assert reply_language(None) == "en"
    assert reply_text(Reply.STOPPED, "fr", hotline="1166") == reply_text(
        Reply.STOPPED, "en", hotline="1166"
    )


def test_the_english_words_everyone_is_asked_to_send_tell_no_language() -> None:
    join = parse_keyword("JOIN bokeo")
    assert join is not None and telling_language(join.language) is None
    lao = parse_keyword("ເຂົ້າຮ່ວມ bokeo")
    assert lao is not None and telling_language(lao.language) == "lo"
    vietnamese = parse_keyword("tham gia bokeo")
    assert vietnamese is not None and telling_language(vietnamese.language) == "vi"
    # every language's JOIN reply asks for the English words
    assert all("JOIN" in REPLIES[language][Reply.LEFT] for language in REPLIES)
