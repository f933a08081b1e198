"""``flask knowledge index [PERSONA] [--force]``: index the personas' knowledge folders now."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from personas.registry import Registry
from tools.knowledge_index import index_persona

knowledge_group = AppGroup("knowledge", help="The personas' knowledge bases ([knowledge]).")


def init_app(app: Flask) -> None:
    """Register the ``knowledge`` command group."""
    app.cli.add_command(knowledge_group)


@knowledge_group.command("index")
@click.argument("persona", required=False)
@click.option("--force", is_flag=True, help="Index again even if no file changed.")
def index_command(persona: str | None, force: bool) -> None:
    """Index each persona's knowledge folder that changed (or PERSONA's only), and forget the
    index of personas that no longer have one; one line each."""
    registry: Registry = current_app.extensions["personas"]
    store = current_app.extensions["store"]
    chosen = [p for p in registry if p.knowledge is not None
              and (persona is None or p.name == persona)]
    if persona is not None and not chosen:
        raise click.UsageError(f"no persona named {persona!r} has a [knowledge] folder")
    # Personas indexed before that no longer have a folder (or no longer exist) are forgotten.
    gone = [] if persona is not None else sorted(
        set(store.knowledge_personas()) - {p.name for p in chosen})
    for name in gone:
        store.drop_knowledge(name)
    if not chosen and not gone:
        click.echo("no persona has a [knowledge] folder")
        return
    width = max(len(name) for name in [*(p.name for p in chosen), *gone])
    for name in gone:
        click.echo(f"{name:<{width}}  dropped: no [knowledge] folder any more")
    for each in chosen:
        try:
            done = index_persona(store, each, force=force)
        except OSError as exc:
            raise click.ClickException(f"{each.name}: {exc}") from None
        state = "indexed" if done.changed else "unchanged"
        click.echo(f"{done.persona:<{width}}  {done.chunks} chunks from {done.files} "
                   f"file{'s' if done.files != 1 else ''}, {state}  ({done.folder})")
