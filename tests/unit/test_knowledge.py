"""The knowledge base (issue 18 item 5): [knowledge] in a persona file, Markdown cut into
passages by heading, the database's own full-text search with stemming (SQLite FTS5 and
PostgreSQL tsvector), re-indexing when files change, and the search_knowledge tool."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from config import Settings
from personas import load_registry
from personas.loader import load_file
from sandbox.conversation import load_script
from store.schema import KNOWLEDGE_TSVECTOR
from tests.unit.test_mcp_endpoint import open_call, post
from tools.catalog import catalog
from tools.knowledge_chunks import MAX_CHUNK_CHARS, chunk_markdown, query_terms, read_folder
from tools.knowledge_index import index_persona, index_stale
from tools.knowledge_tools import NOTHING_FOUND, KnowledgeTools

HEAD = '''
name = "{name}"
description = "A test persona."
prompt = "You are a test agent."
greeting = "Hello."
failure_message = "Sorry."

[llm]
url = "https://llm.example.com/v1/chat/completions"
model = "test-model"

[tts]
vendor = "elevenlabs"
[tts.params]
base_url = "wss://api.elevenlabs.io/v1"
model_id = "eleven_flash_v2_5"
key_env = "TEST_TTS_KEY"
voice_id = "v1"
'''

FAQ = """# Billing

## Refunds

Refunds are issued within 5 days.

## Invoices

Invoices are emailed on the first of each month.

# Opening hours

We open at nine in the morning and close at six in the evening, Monday to Friday.
"""


def resolve(var: str) -> tuple[str, str]:
    return f"{var}-value", "set"


def persona_file(folder: Path, name: str = "helpdesk", knowledge: str = 'folder = "faq"') -> Path:
    path = folder / f"{name}.toml"
    path.write_text(HEAD.format(name=name) + f"\n[knowledge]\n{knowledge}\n")
    return path


@pytest.fixture
def helpdesk(tmp_path: Path):
    """A persona whose [knowledge] folder (faq/, beside its file) holds FAQ as billing.md."""
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "billing.md").write_text(FAQ)
    persona, problems = load_file(persona_file(tmp_path), builtin=False, resolve=resolve)
    assert problems == []
    return persona


# -- the persona file ---------------------------------------------------------------------------


def test_the_folder_is_relative_to_the_persona_file_and_resolved(helpdesk, tmp_path: Path):
    assert helpdesk.knowledge.folder == str((tmp_path / "faq").resolve())
    assert helpdesk.tool_names == ("search_knowledge",)


def test_an_absolute_folder_is_taken_as_it_is(tmp_path: Path):
    (tmp_path / "elsewhere").mkdir()
    folder = tmp_path / "elsewhere"
    persona, problems = load_file(
        persona_file(tmp_path / "elsewhere", knowledge=f'folder = "{folder}"'),
        builtin=False, resolve=resolve)
    assert problems == [] and persona.knowledge.folder == str(folder.resolve())


@pytest.mark.parametrize(("table", "message"), [
    ('folder = "nowhere"', "is not a folder"),
    ('folder = ""', "must be the path of a folder"),
    ("folder = 3", "must be the path of a folder"),
    ("", "knowledge.folder: missing"),
    ('folder = "faq"\nindex = true', "knowledge.index: unknown field"),
])
def test_a_wrong_knowledge_table_is_a_problem_naming_its_field(tmp_path: Path, table, message):
    (tmp_path / "faq").mkdir()
    persona, problems = load_file(persona_file(tmp_path, knowledge=table), builtin=False,
                                  resolve=resolve)
    assert persona is None
    assert any(message in str(p) and str(p).startswith(str(tmp_path / "helpdesk.toml"))
               for p in problems), problems


def test_knowledge_that_is_not_a_table_is_a_problem(tmp_path: Path):
    path = tmp_path / "helpdesk.toml"
    path.write_text('knowledge = "faq"\n' + HEAD.format(name="helpdesk"))
    persona, problems = load_file(path, builtin=False, resolve=resolve)
    assert persona is None
    assert [str(p) for p in problems] == [
        f'{path}: knowledge: must be a table such as [knowledge] folder = "faq"']


def test_the_built_in_support_persona_searches_its_shipped_faq():
    support = load_registry(Settings.for_tests()).get("support")
    folder = Path(support.knowledge.folder)
    assert folder == Path(__file__).resolve().parents[2] / "personas" / "knowledge" / "support"
    headings = {c.heading for c in read_folder(folder).chunks()}
    assert {"Opening hours", "Billing > Refunds", "Your account > Password reset",
            "Orders and delivery > Delivery times"} <= headings
    assert "search_knowledge" in support.prompt


# -- cutting files into passages -----------------------------------------------------------------


def test_markdown_is_cut_at_headings_keeping_the_heading_path():
    chunks = chunk_markdown(FAQ + "\n### Deep\n\nDeeper text.\n\n## Late\n\nLast.\n", "f.md")
    assert [(c.heading, c.body) for c in chunks] == [
        ("Billing > Refunds", "Refunds are issued within 5 days."),
        ("Billing > Invoices", "Invoices are emailed on the first of each month."),
        ("Opening hours", "We open at nine in the morning and close at six in the evening, "
                          "Monday to Friday."),
        ("Opening hours > Deep", "Deeper text."),
        ("Opening hours > Late", "Last."),
    ]
    assert {c.source for c in chunks} == {"f.md"}


def test_a_hash_inside_a_code_block_is_not_a_heading():
    chunks = chunk_markdown("# Setup\n\n```\n# not a heading\n```\n", "f.md")
    assert [(c.heading, c.body) for c in chunks] == [
        ("Setup", "```\n# not a heading\n```")]


def test_a_long_section_is_cut_between_paragraphs_and_each_piece_keeps_its_heading():
    paragraph = "word " * 100  # about 500 characters
    chunks = chunk_markdown("# Long\n\n" + "\n\n".join([paragraph] * 6)
                            + "\n\n" + "x" * 5000, "f.md")
    assert len(chunks) >= 4
    assert all(len(c.body) <= MAX_CHUNK_CHARS and c.heading == "Long" for c in chunks)


def test_the_folder_reads_markdown_and_text_at_any_depth_and_skips_the_rest(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("First paragraph.\n\nSecond paragraph.")
    (tmp_path / "a.md").write_text("# A\n\nText.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("# Secret\n\nNo.")
    folder = read_folder(tmp_path)
    assert [name for name, _ in folder.files] == ["a.md", "sub/notes.txt"]
    assert [(c.source, c.heading) for c in folder.chunks()] == [("a.md", "A"),
                                                                ("sub/notes.txt", "")]


def test_a_question_becomes_plain_words_without_any_query_syntax():
    assert query_terms('How long until I get "refunded"* (NEAR -cards) OR x:y?') == [
        "long", "refunded", "near", "cards"]
    assert query_terms("") == query_terms('"*()-') == []


# -- search, on both databases ------------------------------------------------------------------


def test_a_question_worded_differently_finds_the_passage(store, helpdesk):
    index_persona(store, helpdesk)
    tools = KnowledgeTools(store)
    # "refunded" is in no passage: only stemming (refund) finds "Refunds are issued ...".
    found = tools.search(helpdesk, "how long until I get refunded").structured["passages"]
    assert found[0] == {"text": "Refunds are issued within 5 days.", "source": "billing.md",
                        "heading": "Billing > Refunds"}
    assert "Refunds are issued" not in json.dumps(found[1:])
    opening = tools.search(helpdesk, "when do you close on mondays").structured["passages"]
    assert opening[0]["heading"] == "Opening hours"  # closing -> close, mondays -> monday


def test_at_most_three_passages_best_first_and_only_the_personas_own(store, helpdesk, tmp_path):
    store.replace_knowledge("other", folder="/x", fingerprint="f", chunks=[
        {"source": "o.md", "heading": "Refunds", "body": "Other refunds text."}])
    index_persona(store, helpdesk)
    many = [{"source": "m.md", "heading": f"H{n}", "body": f"Invoices item {n}."}
            for n in range(6)]
    store.replace_knowledge("many", folder="/m", fingerprint="m", chunks=many)
    assert len(KnowledgeTools(store).search(replace(helpdesk, name="many"), "invoices")
               .structured["passages"]) == 3
    found = KnowledgeTools(store).search(helpdesk, "refunds").structured["passages"]
    assert [p["source"] for p in found] == ["billing.md"]


def test_nothing_found_is_an_answer_saying_so_not_an_error(store, helpdesk):
    index_persona(store, helpdesk)
    done = KnowledgeTools(store).search(helpdesk, "what is the weather on mars")
    assert (done.outcome, done.is_error, done.structured) == ("ok", False, {"passages": []})
    assert done.text == NOTHING_FOUND and "do not know" in done.text


@pytest.mark.parametrize("query", [
    '"', '"refund', 'refund"', "*", "refund*", "NEAR(refund invoices)", "refund NEAR invoices",
    "-refund", "(refund", "refund)", "()", "AND", "OR NOT", "heading:refund", "^refund",
    "refund & | ! <-> :*", "'; DROP TABLE knowledge_chunks; --", "\\", "{}", "+ - ~",
])
def test_query_syntax_in_a_question_never_raises(store, helpdesk, query):
    index_persona(store, helpdesk)
    done = KnowledgeTools(store).search(helpdesk, query)
    assert not done.is_error
    # The store quotes whatever terms it is given, too.
    store.search_knowledge(helpdesk.name, [query, "refund"])


def test_a_changed_folder_is_indexed_again_and_an_unchanged_one_is_not(store, helpdesk,
                                                                       tmp_path):
    first = index_stale(store, [helpdesk])
    assert [(i.chunks, i.files, i.changed) for i in first] == [(3, 1, True)]
    assert [i.changed for i in index_stale(store, [helpdesk])] == [False]
    tools = KnowledgeTools(store)
    faq = tmp_path / "faq"
    (faq / "billing.md").write_text(FAQ.replace("within 5 days", "within 10 days"))
    stat = (faq / "billing.md").stat()
    os.utime(faq / "billing.md", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert [i.changed for i in index_stale(store, [helpdesk])] == [True]
    (passage,) = [p for p in tools.search(helpdesk, "refund").structured["passages"]]
    assert passage["text"] == "Refunds are issued within 10 days."
    (faq / "delivery.txt").write_text("Parcels arrive in two days.")
    assert [(i.chunks, i.changed) for i in index_stale(store, [helpdesk])] == [(4, True)]
    assert tools.search(helpdesk, "arriving parcel").structured["passages"][0]["source"] == \
        "delivery.txt"
    (faq / "billing.md").unlink()
    assert [(i.chunks, i.changed) for i in index_stale(store, [helpdesk])] == [(1, True)]
    assert tools.search(helpdesk, "refund").structured["passages"] == []
    assert store.knowledge_source("helpdesk")["chunks"] == 1


def test_the_search_uses_the_databases_full_text_index(store, helpdesk):
    index_persona(store, helpdesk)
    query, params = store.knowledge_query("helpdesk", ["refund"], 3)
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            assert "tokenize='porter" in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'knowledge_fts'").scalar_one()
            plan = " ".join(str(row[-1]) for row in conn.execute(
                sa.text(f"EXPLAIN QUERY PLAN {query.text}"), params))
            assert "VIRTUAL TABLE INDEX" in plan and "knowledge_fts" in plan, plan
        else:
            # The search's tsvector is the GIN index's expression, so the index can serve it
            # (the planner scans a table this small, and prefers the persona's index, unless
            # told otherwise).
            assert KNOWLEDGE_TSVECTOR in query.text
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(conn.execute(sa.text(
                f"EXPLAIN SELECT id FROM knowledge_chunks WHERE {KNOWLEDGE_TSVECTOR} "
                "@@ plainto_tsquery('english', 'refund')")).scalars())
            assert "Bitmap Index Scan on ix_knowledge_fts" in plan, plan


def test_forcing_an_index_rewrites_it_and_dropping_forgets_it(store, helpdesk):
    index_persona(store, helpdesk)
    assert index_persona(store, helpdesk, force=True).changed is True
    assert len(KnowledgeTools(store).search(helpdesk, "refund invoices monday")
               .structured["passages"]) == 3
    store.drop_knowledge("helpdesk")
    assert store.knowledge_source("helpdesk") is None
    assert store.search_knowledge("helpdesk", ["refund"]) == []


# -- the tool, as the agent sees it ---------------------------------------------------------------


def test_the_tool_is_listed_for_a_persona_with_knowledge_only(helpdesk):
    spec = catalog(helpdesk)["search_knowledge"]
    assert (spec.family, spec.once) == ("knowledge", False)
    assert spec.input_schema["required"] == ["query"]
    assert spec.as_mcp()["annotations"] == {"destructiveHint": False, "openWorldHint": False}
    support = load_registry(Settings.for_tests()).get("appointments")
    assert "search_knowledge" not in catalog(support)


def test_the_app_indexes_the_support_faq_at_start_and_the_agent_searches_it(app, client):
    assert app.extensions["store"].knowledge_source("support")["chunks"] >= 4
    _, token = open_call(app, "kb_1")
    answer = post(client, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "search_knowledge", "arguments": {"query": "How long do refunds take?"}}},
        token)
    result = answer.json["result"]
    assert result["isError"] is False
    first = result["structuredContent"]["passages"][0]
    assert set(first) == {"text", "source", "heading"}
    assert (first["source"], first["heading"]) == ("faq.md", "Billing > Refunds")
    assert "5 working days" in result["content"][0]["text"]
    bad = post(client, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "search_knowledge", "arguments": {"question": "refunds"}}}, token)
    assert bad.json["result"]["isError"] is True


@pytest.mark.parametrize(("name", "query", "found"), [
    ("support_faq", "how long until I get refunded", True),
    ("support_unknown", "tickets for the football match", False),
])
def test_the_faq_scripts_search_what_the_shipped_faq_answers_or_does_not(store, name, query,
                                                                         found):
    script = load_script(name)
    assert script.persona == "support" and script.tools[0] == "search_knowledge"
    assert script.turns[0].arguments == {"query": query}
    support = load_registry(Settings.for_tests()).get("support")
    index_persona(store, support)
    passages = KnowledgeTools(store).search(support, query).structured["passages"]
    assert bool(passages) is found


def test_the_index_command_says_per_persona_what_it_indexed(app, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["knowledge", "index"])
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("support  ") and "unchanged" in line  # indexed at start-up
    forced = runner.invoke(args=["knowledge", "index", "support", "--force"])
    assert "chunks from 1 file, indexed" in forced.output
    missing = runner.invoke(args=["knowledge", "index", "tarot"])
    assert missing.exit_code == 2 and "no persona named 'tarot'" in missing.output
    store = app.extensions["store"]
    store.replace_knowledge("retired", folder="/old", fingerprint="f", chunks=[
        {"source": "a.md", "heading": "A", "body": "Refunds."}])
    result = runner.invoke(args=["knowledge", "index"])
    assert result.output.splitlines()[0] == "retired  dropped: no [knowledge] folder any more"
    assert set(store.knowledge_personas()) == {"support"}


def test_workers_indexing_one_folder_at_once_write_it_once(store, helpdesk):
    barrier = threading.Barrier(4)
    changed: list[bool] = []

    def index() -> None:
        barrier.wait(10)
        changed.append(index_persona(store, helpdesk).changed)

    threads = [threading.Thread(target=index) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(changed) == [False, False, False, True]
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM knowledge_chunks")).scalar_one() == 3
    assert len(KnowledgeTools(store).search(helpdesk, "refund").structured["passages"]) == 1
