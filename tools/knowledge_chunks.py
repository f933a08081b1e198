"""A knowledge folder as passages: Markdown cut at its headings, plain text at its paragraphs,
each passage with its heading path ("Billing > Refunds") and its file; the folder's fingerprint;
and a caller's question as plain search terms. Pure functions: no store, no Flask.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The files a knowledge folder is read from (any depth; hidden files and folders are skipped).
SUFFIXES = (".md", ".markdown", ".txt")
#: A passage is at most about this long: a long section is cut between paragraphs (or, for a
#: paragraph longer still, between words), so the agent reads a few focused passages.
MAX_CHUNK_CHARS = 1200
#: Files larger than this are left out (an FAQ is a few kilobytes; this is not a document store).
MAX_FILE_BYTES = 1_000_000
#: Bumped when the cutting changes, so every folder is indexed again.
CHUNKER_VERSION = "1"

HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
WORD = re.compile(r"[^\W_]+")
#: Words that say nothing about what a question is about; left out so that "what", "the" or
#: "I" do not make every passage match (PostgreSQL's English configuration drops them anyway).
STOP_WORDS = frozenset("""
a about am an and any are as at be been being but by can could did do does doing for from get
got had has have having he her here hers him his how i if in into is it its just may me might
my of off on or our ours please she should so some than that the their them then there these
they this those to too until up us was we were what when where which while who whom why will
with would you your yours hi hello thanks thank ok okay tell know want need like
""".split())


@dataclass(frozen=True)
class Chunk:
    source: str   # the file, relative to the folder ("billing/refunds.md")
    heading: str  # the heading path ("Billing > Refunds"); "" before the first heading
    body: str

    def as_row(self) -> dict[str, str]:
        return {"source": self.source, "heading": self.heading, "body": self.body}


@dataclass(frozen=True)
class Folder:
    """The readable files of a knowledge folder: (path relative to it, content)."""

    path: Path
    files: tuple[tuple[str, bytes], ...]

    @property
    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed, renamed or edited (or the cutting)."""
        digest = hashlib.sha256(f"chunker {CHUNKER_VERSION}\0".encode())
        for name, content in self.files:
            digest.update(f"{name}\0{hashlib.sha256(content).hexdigest()}\0".encode())
        return digest.hexdigest()

    def chunks(self) -> list[Chunk]:
        out: list[Chunk] = []
        for name, content in self.files:
            text = content.decode("utf-8", errors="replace")
            out += chunk_markdown(text, name) if not name.endswith(".txt") \
                else chunk_text(text, name)
        return out


def read_folder(path: str | Path) -> Folder:
    """The folder's Markdown and text files, in a stable order (OSError if it is unreadable)."""
    root = Path(path)
    files = []
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if file.suffix.lower() not in SUFFIXES or not file.is_file() \
                or any(part.startswith(".") for part in relative.parts):
            continue
        if file.stat().st_size > MAX_FILE_BYTES:
            continue
        files.append((relative.as_posix(), file.read_bytes()))
    return Folder(root, tuple(files))


def chunk_markdown(text: str, source: str) -> list[Chunk]:
    """Passages of a Markdown file: one per section (its ``#`` heading path), long ones cut."""
    chunks: list[Chunk] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False

    def flush() -> None:
        heading = " > ".join(title for _, title in path)
        chunks.extend(Chunk(source, heading, part) for part in _parts("\n".join(lines)))
        lines.clear()

    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        found = None if fenced else HEADING.match(line)
        if found is None:
            lines.append(line)
            continue
        flush()
        level, title = len(found.group(1)), " ".join(found.group(2).split())
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    flush()
    return chunks


def chunk_text(text: str, source: str) -> list[Chunk]:
    """Passages of a plain-text file: its paragraphs, gathered up to the size limit."""
    return [Chunk(source, "", part) for part in _parts(text)]


def _parts(text: str) -> Iterator[str]:
    """``text`` in pieces of at most MAX_CHUNK_CHARS, cut between paragraphs where possible."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    current = ""
    for paragraph in paragraphs:
        for piece in _words_within(paragraph):
            if current and len(current) + 2 + len(piece) > MAX_CHUNK_CHARS:
                yield current
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        yield current


def _words_within(paragraph: str) -> Iterator[str]:
    """A paragraph longer than the limit, cut between words."""
    if len(paragraph) <= MAX_CHUNK_CHARS:
        yield paragraph
        return
    current = ""
    for word in paragraph.split():
        if current and len(current) + 1 + len(word) > MAX_CHUNK_CHARS:
            yield current
            current = ""
        current = f"{current} {word}" if current else word[:MAX_CHUNK_CHARS]
    if current:
        yield current


def query_terms(query: str) -> list[str]:
    """The words of a caller's question worth searching for, lower-cased, each once: letters
    and digits only, so no quote, star, bracket, minus or keyword reaches the database as
    query syntax."""
    terms: list[str] = []
    for word in WORD.findall(query.lower()):
        if word in STOP_WORDS or (len(word) < 2 and not word.isdigit()) or word in terms:
            continue
        terms.append(word)
    return terms  # store/knowledge.py searches for the first MAX_TERMS of them
