"""Typed-placeholder redaction of card numbers, US SSNs, emails, phone numbers and IBANs.

:class:`Redactor` replaces what it finds by ``[card_number]``, ``[us_ssn]``, ``[email]``,
``[phone]``, ``[iban]`` (and ``[name]`` for a persona's own patterns) and counts each kind; it
never returns the values it removed. Hand-written rather than a library: the checks are small
(Luhn, ISO 13616 mod 97), and transcripts need spoken digits ("four one one one ..."), which the
libraries that find written numbers (phonenumbers, python-stdnum) do not read; Presidio would
bring spaCy and a model for five patterns.

What is assumed, so a reviewer can judge what is kept:

* Digits come as groups (``4111``), number words (``zero``/``oh`` to ``nine``, optionally after
  ``double``/``triple``) or both, separated by spaces, ``-``, ``.``, ``,``, ``/`` or brackets.
  One such run is checked as a whole; tens words ("forty-one") are not read as digits.
* A card number is 13–19 digits of a run that pass the Luhn check and start with 2–6 (the
  issuers' ranges in use); a 16-digit number failing Luhn (an order number) is kept.
* A US SSN is ``ddd-dd-dddd`` (or spaces), or any 9-digit run within 40 characters after
  "social security" or "SSN"; area 000, 666 and 9xx, group 00 and serial 0000 are not SSNs.
* A phone number is a run of 8–15 digits after ``+``, 10–11 digits (a national number with its
  area code, or ``1``/``0`` before it), 11–17 digits beginning ``00``, or ``ddd-dddd``. So a bare
  10-digit reference number is redacted as a phone number: the safe side.
* An email is ``local@domain.tld``, or spoken ``name [dot name] at domain dot com`` for common
  top-level domains. An IBAN is 15–34 characters, country letters and check digits first, that
  pass mod 97 (spaces allowed, any case).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The built-in kinds, in the order a persona's ``redact`` lists them by default.
KINDS = ("card_number", "us_ssn", "email", "phone", "iban")

_WORDS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
          "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_WORD = "(?:" + "|".join(_WORDS) + ")"
_TOKEN = re.compile(
    rf"(?<![A-Za-z0-9])(?:(?P<times>double|triple)[ \t]+)?(?:(?P<digits>\d+)|(?P<word>{_WORD}))"
    r"(?![A-Za-z0-9])", re.IGNORECASE)
_SEP = r"[ \t\-.,/()]{1,4}"
_TOKEN_TEXT = rf"(?:(?:double|triple)[ \t]+)?(?:\d+|{_WORD})"
_RUN = re.compile(
    rf"(?<![A-Za-z0-9+])(?P<plus>\+[ \t]?)?\(?(?<![A-Za-z0-9]){_TOKEN_TEXT}(?![A-Za-z0-9])"
    rf"(?:{_SEP}{_TOKEN_TEXT}(?![A-Za-z0-9]))*", re.IGNORECASE)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_SPOKEN_TLD = "(?:com|net|org|edu|gov|io|co|uk|de|fr|ca|au|us|info|me)"
_SPOKEN_EMAIL = re.compile(
    r"\b[A-Za-z0-9_]+(?:\s+(?:dot|underscore|dash)\s+[A-Za-z0-9_]+)*\s+at\s+[A-Za-z0-9]+"
    rf"(?:\s+dot\s+[A-Za-z0-9]+)*\s+dot\s+{_SPOKEN_TLD}\b", re.IGNORECASE)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}",
                   re.IGNORECASE)
_SSN_CONTEXT = re.compile(r"(?:social\s+security|\bssn\b|\bsocial\b)[^\n]{0,40}$",
                          re.IGNORECASE)


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit is right (every card number's last digit)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616: the country code and check digits moved to the end, as a number, mod 97 is 1."""
    text = candidate.replace(" ", "").upper()
    if not 15 <= len(text) <= 34 or not text[:2].isalpha() or not text[2:4].isdigit():
        return False
    moved = text[4:] + text[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    digits: str
    spoken: bool


@dataclass(frozen=True)
class Redactor:
    """Which kinds one persona removes, and its own named patterns (``name -> compiled``)."""

    kinds: tuple[str, ...] = KINDS
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(unknown)}")

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.patterns)

    def text(self, text: str) -> tuple[str, dict[str, int]]:
        """``text`` with what it found replaced, and how many of each kind (kinds found only)."""
        counts: Counter[str] = Counter()
        for name, pattern in self.patterns:
            text = _sub(pattern, f"[{name}]", text, counts, name)
        if "email" in self.kinds:
            text = _sub(_EMAIL, "[email]", text, counts, "email")
            text = _sub(_SPOKEN_EMAIL, "[email]", text, counts, "email")
        if "iban" in self.kinds:
            text = _ibans(text, counts)
        if {"card_number", "us_ssn", "phone"} & set(self.kinds):
            text = _RUN.sub(lambda m: self._run(m, text, counts), text)
        return text, dict(counts)

    def value(self, value: Any) -> tuple[Any, dict[str, int]]:
        """Every string inside ``value`` (dicts, lists, tuples; keys kept) redacted, and the
        counts summed."""
        counts: Counter[str] = Counter()

        def walk(item: Any) -> Any:
            if isinstance(item, str):
                out, found = self.text(item)
                counts.update(found)
                return out
            if isinstance(item, Mapping):
                return {key: walk(inner) for key, inner in item.items()}
            if isinstance(item, list | tuple):
                return [walk(inner) for inner in item]
            return item

        if not self.active:
            return value, {}
        return walk(value), dict(counts)

    # -- digit runs -------------------------------------------------------------------------

    def _run(self, match: re.Match[str], text: str, counts: Counter[str]) -> str:
        run = match.group(0)
        tokens = [_token(t) for t in _TOKEN.finditer(run)]
        before = text[max(0, match.start() - 60):match.start()]
        plus = match.group("plus") is not None
        spans = self._classify(tokens, 0, len(tokens), plus=plus, before=before)
        if not spans:
            return run
        out, last = [], 0
        for first, end, kind in spans:
            # A match that takes the run's first token also takes its "+" or "(".
            start = 0 if first == 0 else tokens[first].start
            out += [run[last:start], f"[{kind}]"]
            last = tokens[end - 1].end
            counts[kind] += 1
        out.append(run[last:])
        return "".join(out)

    def _classify(self, tokens: list[_Token], lo: int, hi: int, *, plus: bool,
                  before: str) -> list[tuple[int, int, str]]:
        """(first, end, kind) for the tokens[lo:hi] to replace, in order."""
        if lo >= hi:
            return []
        if "card_number" in self.kinds:
            card = _card(tokens, lo, hi)
            if card is not None:
                first, end = card
                return [*self._classify(tokens, lo, first, plus=plus, before=before),
                        (first, end, "card_number"),
                        *self._classify(tokens, end, hi, plus=False, before="")]
        digits = "".join(t.digits for t in tokens[lo:hi])
        plus = plus and lo == 0
        if "us_ssn" in self.kinds and _ssn(tokens[lo:hi], digits, before if lo == 0 else ""):
            return [(lo, hi, "us_ssn")]
        if "phone" in self.kinds and _phone(tokens[lo:hi], digits, plus):
            return [(lo, hi, "phone")]
        return []


def _token(match: re.Match[str]) -> _Token:
    digits = match.group("digits") or _WORDS[match.group("word").lower()]
    times = {"double": 2, "triple": 3}.get((match.group("times") or "").lower(), 1)
    return _Token(match.start(), match.end(), digits * times, match.group("word") is not None)


def _card(tokens: list[_Token], lo: int, hi: int) -> tuple[int, int] | None:
    """The first, then longest, stretch of whole tokens that is a card number."""
    for first in range(lo, hi):
        found = None
        digits = ""
        for end in range(first + 1, hi + 1):
            digits += tokens[end - 1].digits
            if len(digits) > 19:
                break
            if len(digits) >= 13 and digits[0] in "23456" and luhn_ok(digits):
                found = (first, end)
        if found:
            return found
    return None


def _ssn(tokens: list[_Token], digits: str, before: str) -> bool:
    if len(digits) != 9 or digits[:3] in ("000", "666") or digits[0] == "9" \
            or digits[3:5] == "00" or digits[5:] == "0000":
        return False
    written = [len(t.digits) for t in tokens] == [3, 2, 4] and not any(t.spoken for t in tokens)
    return written or bool(_SSN_CONTEXT.search(before))


def _phone(tokens: list[_Token], digits: str, plus: bool) -> bool:
    if plus:
        return 8 <= len(digits) <= 15
    if digits.startswith("00"):
        return 11 <= len(digits) <= 17
    if [len(t.digits) for t in tokens] == [3, 4] and not any(t.spoken for t in tokens):
        return True
    return 10 <= len(digits) <= 11


def _sub(pattern: re.Pattern[str], placeholder: str, text: str, counts: Counter[str],
         kind: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if not match.group(0):
            return ""  # a pattern that can match nothing replaces nothing
        counts[kind] += 1
        return placeholder
    return pattern.sub(replace, text)


def _ibans(text: str, counts: Counter[str]) -> str:
    """Each candidate, shortened from its end until it passes mod 97 (a candidate may run into
    the next word: "DE89 3704 0044 0532 0130 00 is"), replaced if one does."""
    out, last = [], 0
    for match in _IBAN.finditer(text):
        if match.start() < last:
            continue
        candidate = match.group(0)
        while candidate and not iban_ok(candidate):
            candidate = candidate[:-1].rstrip()
            if len(candidate.replace(" ", "")) < 15:
                candidate = ""
        if candidate:
            out += [text[last:match.start()], "[iban]"]
            last = match.start() + len(candidate)
            counts["iban"] += 1
    out.append(text[last:])
    return "".join(out)



__all__ = ["KINDS", "Redactor", "iban_ok", "luhn_ok"]

