"""Rendering: one Jinja2 environment (autoescape on for every template), and small helpers that
turn a template or a refusal into a response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from vivified.dataplane.ui.session import Session

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name: all values shown are untrusted
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    template: str, session: Session | None, *, status: int = 200, **context: Any
) -> web.Response:
    html = ENV.get_template(template).render(session=session, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def message(
    session: Session | None, title: str, text: str, *, status: int, back: str = "/ui/"
) -> web.Response:
    """A page that says what was refused and why (the API server's words when it refused)."""
    return render("message.html", session, status=status, title=title, text=text, back=back)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result (no re-POST on reload)."""
    return web.Response(status=303, headers={"Location": location})
