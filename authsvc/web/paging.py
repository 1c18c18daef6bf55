"""Paged lists (issue 20): the security center's and the admin user page's session lists show ``PER_PAGE`` at a time.

``?<arg>=N`` picks the page: digits only (anything else, or more than 6 digits, is a 400 naming the parameter);
a page past the end shows the last one. The list itself is bounded by ``session_max_per_user``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, request

PER_PAGE = 20


@dataclass(frozen=True)
class Page:
    items: list[Any]
    number: int
    pages: int
    total: int
    arg: str

    @property
    def first_index(self) -> int:
        return (self.number - 1) * PER_PAGE


def page_of(items: list[Any], arg: str, per_page: int = PER_PAGE) -> Page:
    raw = request.args.get(arg, "1")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        abort(400, description=f"{arg} must be a page number")
    total = len(items)
    pages = max(1, -(-total // per_page))
    number = min(max(1, int(raw)), pages)
    start = (number - 1) * per_page
    return Page(items[start:start + per_page], number, pages, total, arg)
