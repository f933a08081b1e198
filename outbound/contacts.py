"""A campaign's contacts as a request gives them: a JSON list, or a CSV file with the columns
``number``, ``timezone`` (optional) and one column per template variable. Pure; every problem
names the contact (its position, or its CSV line) so the operator can fix the file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from outbound.rules import Invalid, zone
from sip.numbers import e164

#: One campaign's contacts at most: a larger list is split into several campaigns (a request
#: body stays within the service's 4 MiB limit, and one status page stays readable).
MAX_CONTACTS = 10_000
MAX_VARIABLE_CHARS = 500


@dataclass(frozen=True)
class Contact:
    number: str
    timezone: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Contacts:
    """The contacts to call, in order, and how many duplicate numbers were left out (a person
    is called once per campaign)."""

    contacts: list[Contact]
    duplicates: int = 0


def _contact(raw: Any, where: str) -> Contact:
    if not isinstance(raw, Mapping):
        raise Invalid(f"{where} must be an object with a number")
    try:
        number = e164(raw.get("number"))
    except ValueError as exc:
        raise Invalid(f"{where}: number: {exc}") from None
    timezone = raw.get("timezone")
    if timezone in (None, ""):
        timezone = None
    else:
        zone(timezone, f"{where}: timezone")
        timezone = timezone.strip()
    variables = raw.get("variables") or {}
    if not isinstance(variables, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise Invalid(f"{where}: variables must be an object of strings")
    if any(len(v) > MAX_VARIABLE_CHARS for v in variables.values()):
        raise Invalid(f"{where}: a variable is at most {MAX_VARIABLE_CHARS} characters")
    return Contact(number, timezone, dict(variables))


def _unique(found: list[Contact]) -> Contacts:
    if not found:
        raise Invalid("contacts must list at least one contact")
    if len(found) > MAX_CONTACTS:
        raise Invalid(f"a campaign has at most {MAX_CONTACTS} contacts")
    seen: set[str] = set()
    kept = []
    for contact in found:
        if contact.number not in seen:
            seen.add(contact.number)
            kept.append(contact)
    return Contacts(kept, len(found) - len(kept))


def from_json(value: Any) -> Contacts:
    if not isinstance(value, list):
        raise Invalid("contacts must be a list of {number, variables?, timezone?}")
    return _unique([_contact(raw, f"contacts[{i}]") for i, raw in enumerate(value)])


def from_csv(text: str) -> Contacts:
    """Contacts from CSV text: a header row with ``number`` (required) and ``timezone``
    (optional); every other column is a template variable of that contact."""
    try:
        return _unique(list(_csv_contacts(text)))
    except csv.Error as exc:  # a field over the csv module's 128 KiB limit, a NUL byte
        raise Invalid(f"the CSV cannot be read: {exc}") from None


def numbers_from_csv(text: str) -> list[str]:
    """The numbers of a do-not-call CSV (a ``number`` column; other columns are ignored),
    each in E.164 form; a wrong one names its line."""
    try:
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        header = [h.strip() for h in reader.fieldnames or []]
        if "number" not in header:
            raise Invalid("the CSV needs a header row with a number column")
        reader.fieldnames = header
        found = []
        for row in reader:
            try:
                found.append(e164((row.get("number") or "").strip()))
            except ValueError as exc:
                raise Invalid(f"CSV line {reader.line_num}: number: {exc}") from None
    except csv.Error as exc:
        raise Invalid(f"the CSV cannot be read: {exc}") from None
    if not found:
        raise Invalid("the CSV lists no number")
    return found


def _csv_contacts(text: str) -> Iterator[Contact]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    if "number" not in header:
        raise Invalid("the CSV needs a header row with a number column (and optionally "
                      "timezone and one column per variable)")
    reader.fieldnames = header
    for row in reader:
        where = f"CSV line {reader.line_num}"
        if None in row:
            raise Invalid(f"{where} has more fields than the header")
        variables = {k: (v or "").strip() for k, v in row.items()
                     if k not in ("number", "timezone") and k}
        yield _contact({"number": (row.get("number") or "").strip(),
                        "timezone": (row.get("timezone") or "").strip(),
                        "variables": variables}, where)
