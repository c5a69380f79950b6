"""What a country code implies when nothing more is known: its time zone and language.

Time zones come from the IANA time zone database's ``zone.tab`` as the ``tzdata`` package
ships it (a dependency already, so every process reads the same table whatever the
system has). ``zone.tab`` names one zone per row with exactly one country each, and keeps
the country's own name for it (``LA`` is ``Asia/Vientiane``; ``zone1970.tab`` would say
``Asia/Bangkok``, the zone Laos shares). A country with several zones gets the first one
listed: tzdb orders a country's rows geographically, the most populous first where that
does not contradict geography (``US`` -> ``America/New_York``, ``CN`` ->
``Asia/Shanghai``, but ``RU`` -> ``Europe/Kaliningrad``): such a community should name its
zone.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final

# The language a community in these countries speaks unless it says otherwise: the
# national language of the countries riskcast serves. Elsewhere there is no such guess.
LANGUAGE_OF_COUNTRY: Final = MappingProxyType(
    {"LA": "lo", "TH": "th", "KH": "km", "VN": "vi", "MM": "my"}
)


@cache
def _zones() -> dict[str, str]:
    """Country code -> its first zone in tzdata's ``zone.tab``."""
    text = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    zones: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        country, _coordinates, zone, *_comment = line.split("\t")
        zones.setdefault(country.upper(), zone)
    return zones


def timezone_of(country: str) -> str | None:
    """The time zone of ``country`` (two letters), its main one if it has several; None for
    a code tzdb does not know."""
    return _zones().get(country.upper())


def language_of(country: str) -> str | None:
    """The language a community in ``country`` speaks by default, or None."""
    return LANGUAGE_OF_COUNTRY.get(country.upper())
