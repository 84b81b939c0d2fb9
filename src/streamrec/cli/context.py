"""What every CLI verb gets: the settings, loaded once from the global options."""

from __future__ import annotations

import typer

from streamrec.settings import Settings


def settings_of(ctx: typer.Context) -> Settings:
    """The Settings the root callback loaded (commands call this instead of loading their own)."""
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):  # a verb invoked without the root callback (should not happen)
        raise typer.BadParameter("settings not loaded")
    return settings
