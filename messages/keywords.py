"""Keywords people text us (STOP, START, HELP, JOIN, LEAVE) and the replies we send back.

Pure: the word tables, the matching and the reply texts, nothing that touches a database.
:mod:`broadcaster.inbound.service` acts on what :func:`parse` finds.

Matching follows Twilio's own rule for its opt-out words, the whole message is the keyword
("Stop" opts out, "Stop please" does not), made forgiving in the ways phones and people
differ: case, spaces, punctuation, emoji and invisible marks are ignored, the text is
NFC-normalised (with the few Lao and Thai characters that NFC leaves in two spellings
folded to one), and a trailing polite particle ("หยุดครับ", "ຢຸດແດ່") is dropped.
``JOIN <code>`` and ``LEAVE <code>`` take a community code, a slug such as ``village-12``;
Lao, Thai, Khmer and Burmese are written without spaces between words, so in those
scripts the code may follow the word directly ("ເຂົ້າຮ່ວມvillage-12").

Every word belongs to a language, so a keyword also tells us which language to answer in
when we know nothing else about the sender. The Lao, Thai, Khmer, Vietnamese and Burmese
words and replies were written for riskcast and want a native speaker's review before a
national roll-out (as the template catalog's ``review: true`` does for bodies).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


class Keyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    JOIN = "join"
    LEAVE = "leave"


class Reply(enum.StrEnum):
    """The answers we send, one text per language in :data:`REPLIES`."""

    STOPPED = "stopped"
    STARTED = "started"
    HELP = "help"
    JOINED = "joined"
    LEFT = "left"
    UNKNOWN_CODE = "unknown_code"
    MISSING_CODE = "missing_code"


# keyword -> language -> words, each written as people type it; the matcher normalises
# both sides the same way, so spaces and case here do not matter.
KEYWORDS: Final[Mapping[Keyword, Mapping[str, frozenset[str]]]] = {
    Keyword.STOP: {
        # Twilio's default opt-out words.
        "en": frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}),
        "lo": frozenset({"ຢຸດ", "ເຊົາ", "ຍົກເລີກ", "ຢຸດສົ່ງ"}),
        "th": frozenset({"หยุด", "ยกเลิก", "เลิก", "หยุดส่ง"}),
        "km": frozenset({"ឈប់"}),
        "vi": frozenset({"dừng", "ngừng", "hủy", "huỷ"}),
        "my": frozenset({"ရပ်", "ရပ်ပါ"}),
    },
    Keyword.START: {
        "en": frozenset({"START", "YES", "UNSTOP"}),
        "lo": frozenset({"ເລີ່ມ", "ເລີ່ມຕົ້ນ", "ແມ່ນ"}),
        "th": frozenset({"เริ่ม", "เริ่มต้น", "ใช่"}),
        "km": frozenset({"ចាប់ផ្តើម", "ចាប់ផ្ដើម"}),
        "vi": frozenset({"bắt đầu"}),
        "my": frozenset({"စတင်"}),
    },
    Keyword.HELP: {
        "en": frozenset({"HELP", "INFO"}),
        # ຫຼ is also typed the older way, ຫ + ລ.
        "lo": frozenset({"ຊ່ວຍ", "ຊ່ວຍເຫຼືອ", "ຊ່ວຍເຫລືອ", "ຂໍ້ມູນ"}),
        "th": frozenset({"ช่วย", "ช่วยเหลือ", "ข้อมูล"}),
        "km": frozenset({"ជំនួយ"}),
        "vi": frozenset({"giúp", "trợ giúp"}),
        "my": frozenset({"အကူအညီ"}),
    },
    Keyword.JOIN: {
        "en": frozenset({"JOIN"}),
        "lo": frozenset({"ເຂົ້າຮ່ວມ", "ສະໝັກ"}),
        "th": frozenset({"เข้าร่วม", "สมัคร"}),
        "km": frozenset({"ចូលរួម"}),
        "vi": frozenset({"tham gia"}),
        "my": frozenset({"ဝင်"}),
    },
    Keyword.LEAVE: {
        "en": frozenset({"LEAVE"}),
        "lo": frozenset({"ອອກ", "ອອກຈາກ"}),
        "th": frozenset({"ออก", "ออกจาก"}),
        "km": frozenset({"ចាកចេញ"}),
        "vi": frozenset({"rời", "rời khỏi"}),
        "my": frozenset({"ထွက်"}),
    },
}

# Keywords followed by a community code.
WITH_CODE: Final = frozenset({Keyword.JOIN, Keyword.LEAVE})

# Polite particles people add after a keyword ("หยุดครับ": "stop, please").
POLITE_PARTICLES: Final[Mapping[str, tuple[str, ...]]] = {
    "lo": ("ແດ່", "ເດີ", "ເຈົ້າ", "ແນ່"),
    "th": ("นะครับ", "นะคะ", "ครับ", "ค่ะ", "คะ", "ค่า", "นะ", "จ้า"),
}

# Sequences NFC leaves in two spellings: the decomposed forms of Lao and Thai AM and of
# Lao HO NO / HO MO, which phones produce either way.
_FOLDS: Final = (
    ("\u0ecd\u0eb2", "\u0eb3"),  # Lao NIGGAHITA + AA -> AM
    ("\u0e4d\u0e32", "\u0e33"),  # Thai NIKHAHIT + SARA AA -> SARA AM
    ("\u0eab\u0e99", "\u0edc"),  # Lao HO + NO -> HO NO
    ("\u0eab\u0ea1", "\u0edd"),  # Lao HO + MO -> HO MO
)

# Scripts written without spaces between words, by Unicode block.
_SCRIPTS: Final = (
    ("lo", 0x0E80, 0x0EFF),
    ("th", 0x0E00, 0x0E7F),
    ("km", 0x1780, 0x17FF),
    ("my", 0x1000, 0x109F),
)

CODE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def _ignorable(ch: str) -> bool:
    """Spaces, punctuation, symbols and emoji, control and invisible format characters."""
    return unicodedata.category(ch)[0] in "PZSC"


# Full-width ASCII (typed with a Chinese or Japanese keyboard) -> ASCII.
_FULL_WIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def fold(text: str) -> str:
    """NFC, the Lao/Thai folds, case-folded: the form both tables and messages are compared in."""
    text = unicodedata.normalize("NFC", text).translate(_FULL_WIDTH)
    for decomposed, composed in _FOLDS:
        text = text.replace(decomposed, composed)
    return text.casefold()


def normalize(text: str) -> str:
    """``text`` folded, with everything :func:`_ignorable` removed: "S.T.O.P!" -> "stop"."""
    return "".join(ch for ch in fold(text) if not _ignorable(ch))


def script_language(text: str) -> str | None:
    """The language of the first letter in a spaceless script (lo, th, km, my), else None."""
    for ch in text:
        point = ord(ch)
        for language, first, last in _SCRIPTS:
            if first <= point <= last:
                return language
    return None


def guess_language(text: str) -> str:
    """The language a message is written in, as far as its script tells: lo, th, km, my, en."""
    return script_language(text) or "en"


# normalised word -> (keyword, language); built once, checked for clashes at import.
def _index() -> dict[str, tuple[Keyword, str]]:
    index: dict[str, tuple[Keyword, str]] = {}
    for keyword, by_language in KEYWORDS.items():
        for language, words in by_language.items():
            for word in words:
                key = normalize(word)
                if key in index and index[key][0] is not keyword:
                    raise ValueError(
                        f"keyword word {word!r} means both {index[key][0]} and {keyword}"
                    )
                index.setdefault(key, (keyword, language))
    return index


_WORDS: Final = _index()
# JOIN/LEAVE words, longest first so "ອອກຈາກ" wins over "ອອກ".
_CODE_WORDS: Final = sorted(
    ((word, kw, lang) for word, (kw, lang) in _WORDS.items() if kw in WITH_CODE),
    key=lambda item: -len(item[0]),
)


@dataclass(frozen=True, slots=True)
class Match:
    """A keyword found in a message.

    ``language`` is the language of the word used ("en" for STOP, "lo" for ຢຸດ).
    ``code`` is the community code after JOIN or LEAVE, lower-case with ASCII digits, or
    None when the message was the bare word.
    """

    keyword: Keyword
    language: str
    code: str | None = None


def _strip_particles(text: str) -> str:
    for particles in POLITE_PARTICLES.values():
        for particle in particles:
            if text.endswith(particle) and len(text) > len(particle):
                return text[: -len(particle)]
    return text


def _code(rest: str) -> str | None:
    """A community code from what follows JOIN/LEAVE: one token, slug-shaped, else None."""
    token = rest.strip()
    while token and _ignorable(token[0]):
        token = token[1:]
    while token and _ignorable(token[-1]):
        token = token[:-1]
    if any(ch.isspace() for ch in token):
        return None
    ascii_token = "".join(
        str(unicodedata.decimal(ch)) if unicodedata.category(ch) == "Nd" else ch for ch in token
    )
    return ascii_token if CODE_PATTERN.fullmatch(ascii_token) else None


def _with_code(folded: str) -> Match | None:
    """``JOIN <code>`` or ``LEAVE <code>`` (the word alone is handled by the caller)."""
    text = folded.strip()
    while text and _ignorable(text[0]):
        text = text[1:]
    squeezed = "".join(ch for ch in text if not ch.isspace())
    for word, keyword, language in _CODE_WORDS:
        # Compare with spaces removed so "tham gia" and "rời khỏi" match as typed.
        if not squeezed.startswith(word):
            continue
        # Where the word ends in the original text (spaces inside the word skipped).
        seen, end = 0, 0
        while seen < len(word) and end < len(text):
            if not text[end].isspace():
                seen += 1
            end += 1
        rest = text[end:]
        # Latin words need a gap before the code ("joining" is not JOIN + "ing"); in
        # spaceless scripts the code may follow at once.
        if (
            script_language(word) is None
            and rest
            and not (rest[0].isspace() or _ignorable(rest[0]))
        ):
            continue
        code = _code(rest)
        if code is not None:
            return Match(keyword, language, code)
    return None


def parse(body: str) -> Match | None:
    """The keyword a whole message amounts to, or None for anything else (it goes to the inbox)."""
    folded = fold(body)
    key = "".join(ch for ch in folded if not _ignorable(ch))
    if not key:
        return None
    found = _WORDS.get(key) or _WORDS.get(_strip_particles(key))
    if found is not None:
        return Match(found[0], found[1])
    return _with_code(folded)


def opt_out_type(keyword: Keyword) -> str | None:
    """Twilio's ``OptOutType`` for ``keyword`` (STOP, START, HELP), or None."""
    if keyword in (Keyword.STOP, Keyword.START, Keyword.HELP):
        return keyword.value.upper()
    return None


# Replies, short: a Lao or Thai text is UCS-2 (70 units a segment), and Twilio's Advanced
# Opt-Out may send its own answer as well. Fields: {hotline}, {community}, {code}.
REPLIES: Final[Mapping[str, Mapping[Reply, str]]] = {
    "en": {
        Reply.STOPPED: "You are unsubscribed and will get no more messages. Reply START to subscribe again.",
        Reply.STARTED: "You are subscribed again. Reply STOP to unsubscribe.",
        Reply.HELP: "Health information. Hotline {hotline}. Reply STOP to unsubscribe, START to subscribe again.",
        Reply.JOINED: "You joined {community}. Reply LEAVE {code} to leave. Hotline {hotline}.",
        Reply.LEFT: "You left {community}. Reply JOIN {code} to join again.",
        Reply.UNKNOWN_CODE: "No community has the code {code}. Check the code or call {hotline}.",
        Reply.MISSING_CODE: "Send JOIN and your community code to subscribe, LEAVE and the code to leave. Hotline {hotline}.",
    },
    "lo": {
        Reply.STOPPED: "ທ່ານຍົກເລີກການຮັບຂໍ້ຄວາມແລ້ວ. ສົ່ງ START ເພື່ອຮັບຄືນ.",
        Reply.STARTED: "ທ່ານຈະໄດ້ຮັບຂໍ້ຄວາມອີກ. ສົ່ງ STOP ເພື່ອຢຸດ.",
        Reply.HELP: "ຂໍ້ມູນສຸຂະພາບ. ສາຍດ່ວນ {hotline}. ສົ່ງ STOP ເພື່ອຢຸດ, START ເພື່ອຮັບຄືນ.",
        Reply.JOINED: "ທ່ານເຂົ້າຮ່ວມ {community} ແລ້ວ. ສົ່ງ LEAVE {code} ເພື່ອອອກ. ສາຍດ່ວນ {hotline}.",
        Reply.LEFT: "ທ່ານອອກຈາກ {community} ແລ້ວ. ສົ່ງ JOIN {code} ເພື່ອເຂົ້າຮ່ວມຄືນ.",
        Reply.UNKNOWN_CODE: "ບໍ່ພົບລະຫັດ {code}. ກະລຸນາກວດລະຫັດ ຫຼື ໂທ {hotline}.",
        Reply.MISSING_CODE: "ສົ່ງ JOIN ແລະ ລະຫັດຊຸມຊົນ ເພື່ອສະໝັກ, LEAVE ແລະ ລະຫັດ ເພື່ອອອກ. ສາຍດ່ວນ {hotline}.",
    },
    "th": {
        Reply.STOPPED: "คุณยกเลิกการรับข้อความแล้ว ส่ง START เพื่อรับอีกครั้ง",
        Reply.STARTED: "คุณจะได้รับข้อความอีกครั้ง ส่ง STOP เพื่อหยุด",
        Reply.HELP: "ข้อมูลสุขภาพ สายด่วน {hotline} ส่ง STOP เพื่อหยุด START เพื่อรับอีกครั้ง",
        Reply.JOINED: "คุณเข้าร่วม {community} แล้ว ส่ง LEAVE {code} เพื่อออก สายด่วน {hotline}",
        Reply.LEFT: "คุณออกจาก {community} แล้ว ส่ง JOIN {code} เพื่อเข้าร่วมอีกครั้ง",
        Reply.UNKNOWN_CODE: "ไม่พบรหัส {code} กรุณาตรวจสอบรหัส หรือโทร {hotline}",
        Reply.MISSING_CODE: "ส่ง JOIN ตามด้วยรหัสชุมชนเพื่อสมัคร หรือ LEAVE ตามด้วยรหัสเพื่อออก สายด่วน {hotline}",
    },
    "km": {
        Reply.STOPPED: "អ្នកបានឈប់ទទួលសារហើយ។ ផ្ញើ START ដើម្បីទទួលម្តងទៀត។",
        Reply.STARTED: "អ្នកនឹងទទួលសារម្តងទៀត។ ផ្ញើ STOP ដើម្បីឈប់។",
        Reply.HELP: "ព័ត៌មានសុខភាព។ ទូរស័ព្ទបន្ទាន់ {hotline}។ ផ្ញើ STOP ដើម្បីឈប់។",
        Reply.JOINED: "អ្នកបានចូលរួម {community} ហើយ។ ផ្ញើ LEAVE {code} ដើម្បីចាកចេញ។",
        Reply.LEFT: "អ្នកបានចាកចេញពី {community} ហើយ។ ផ្ញើ JOIN {code} ដើម្បីចូលរួមវិញ។",
        Reply.UNKNOWN_CODE: "រកមិនឃើញលេខកូដ {code} ទេ។ សូមហៅ {hotline}។",
        Reply.MISSING_CODE: "ផ្ញើ JOIN និងលេខកូដសហគមន៍ ដើម្បីចុះឈ្មោះ ឬ LEAVE និងលេខកូដ ដើម្បីចាកចេញ។",
    },
    "vi": {
        Reply.STOPPED: "Bạn đã hủy nhận tin nhắn. Gửi START để nhận lại.",
        Reply.STARTED: "Bạn sẽ nhận tin nhắn trở lại. Gửi STOP để dừng.",
        Reply.HELP: "Thông tin sức khỏe. Đường dây nóng {hotline}. Gửi STOP để dừng, START để nhận lại.",
        Reply.JOINED: "Bạn đã tham gia {community}. Gửi LEAVE {code} để rời. Đường dây nóng {hotline}.",
        Reply.LEFT: "Bạn đã rời {community}. Gửi JOIN {code} để tham gia lại.",
        Reply.UNKNOWN_CODE: "Không tìm thấy mã {code}. Vui lòng kiểm tra mã hoặc gọi {hotline}.",
        Reply.MISSING_CODE: "Gửi JOIN và mã cộng đồng để đăng ký, LEAVE và mã để rời. Đường dây nóng {hotline}.",
    },
    "my": {
        Reply.STOPPED: "စာများ လက်ခံခြင်းကို ရပ်ပြီးပါပြီ။ ပြန်လက်ခံရန် START ပို့ပါ။",
        Reply.STARTED: "စာများ ပြန်လက်ခံရပါမည်။ ရပ်ရန် STOP ပို့ပါ။",
        Reply.HELP: "ကျန်းမာရေး သတင်း။ အရေးပေါ်ဖုန်း {hotline}။ ရပ်ရန် STOP ပို့ပါ။",
        Reply.JOINED: "{community} သို့ ဝင်ပြီးပါပြီ။ ထွက်ရန် LEAVE {code} ပို့ပါ။",
        Reply.LEFT: "{community} မှ ထွက်ပြီးပါပြီ။ ပြန်ဝင်ရန် JOIN {code} ပို့ပါ။",
        Reply.UNKNOWN_CODE: "ကုဒ် {code} ကို မတွေ့ပါ။ {hotline} ကို ဖုန်းဆက်ပါ။",
        Reply.MISSING_CODE: "စာရင်းသွင်းရန် JOIN နှင့် ကုဒ်၊ ထွက်ရန် LEAVE နှင့် ကုဒ် ပို့ပါ။ အရေးပေါ်ဖုန်း {hotline}။",
    },
}

FALLBACK_LANGUAGE: Final = "en"

# The language of the words every reply (in every language) and every poster tells people
# to send: "ສົ່ງ JOIN ..." is Lao. A keyword in it says nothing of the sender's language.
INSTRUCTED_LANGUAGE: Final = "en"


def telling_language(word_language: str | None) -> str | None:
    """The language a keyword written in ``word_language`` tells us its sender speaks, or
    None when it tells nothing (the English words everyone is asked to send)."""
    return None if word_language == INSTRUCTED_LANGUAGE else word_language


def reply_language(*candidates: str | None) -> str:
    """The first of ``candidates`` that :data:`REPLIES` has, else English."""
    for candidate in candidates:
        if candidate:
            code = candidate.strip().lower().replace("_", "-").split("-", 1)[0]
            if code in REPLIES:
                return code
    return FALLBACK_LANGUAGE


def reply_text(
    reply: Reply, language: str | None, *, hotline: str, community: str = "", code: str = ""
) -> str:
    """The reply ``reply`` in ``language`` (English if we have no text in it), filled in."""
    texts = REPLIES[reply_language(language)]
    return texts[reply].format(hotline=hotline, community=community, code=code)
