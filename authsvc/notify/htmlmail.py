"""HTML part of every e-mail, made from its text part by a Jinja template (``templates/email/message.html``).

Every message is written once, as plain text, by the code that sends it; this module turns that text into a
simple, accessible HTML alternative: paragraphs, bullet lists ("  - item"), facts ("  When: ...") as a table, and
links — a paragraph whose only content is a link, or which ends with one, gets it as a button. The text part stays
the authoritative one (and what tests read). A theme folder may override ``email/message.html`` like any page.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

_URL = re.compile(r"https?://[^\s<>\"']+")
_FACT = re.compile(r"^\s{2,}([A-Z][\w ()/-]{0,30}):\s+(.+)$")
_ITEM = re.compile(r"^\s*-\s+(.+)$")


@dataclass
class Block:
    kind: str  # p | list | facts | button
    lines: list = field(default_factory=list)


def blocks(body: str) -> list[Block]:
    out: list[Block] = []
    for para in re.split(r"\n[ \t]*\n", body.strip("\n")):
        lines = [ln.rstrip() for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        if all(_FACT.match(ln) for ln in lines):
            out.append(Block("facts", [_FACT.match(ln).groups() for ln in lines]))
            continue
        head = [ln for ln in lines if not _ITEM.match(ln)]
        items = [_ITEM.match(ln).group(1) for ln in lines if _ITEM.match(ln)]
        if items and lines[: len(head)] == head:  # text, then the list it introduces
            if head:
                out.append(Block("p", [" ".join(ln.strip() for ln in head)]))
            out.append(Block("list", items))
            continue
        text = " ".join(ln.strip() for ln in lines)
        urls = _URL.findall(text)
        if len(urls) == 1 and text.rstrip(".").endswith(urls[0]):
            lead = text[: text.rfind(urls[0])].strip().rstrip(":")
            if lead:
                out.append(Block("p", [lead + ":"]))
            out.append(Block("button", [urls[0]]))
            continue
        out.append(Block("p", [text]))
    return out


class EmailRenderer:
    def __init__(self, settings):
        self.settings = settings
        loaders = [PackageLoader("authsvc", "templates")]
        if settings.theme_dir and os.path.isdir(os.path.join(settings.theme_dir, "templates")):
            loaders.insert(0, FileSystemLoader(os.path.join(settings.theme_dir, "templates")))
        self.env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True))
        self.env.filters["linkify"] = _linkify

    def html(self, subject: str, body: str) -> str:
        s = self.settings
        return self.env.get_template("email/message.html").render(
            subject=subject, blocks=blocks(body), service_name=s.service_name,
            accent=s.brand_accent or "#0b57d0", support_url=s.support_url, base_url=s.base_url)


def _linkify(text: str):
    from markupsafe import Markup, escape

    out, last = [], 0
    for m in _URL.finditer(text):
        out.append(escape(text[last:m.start()]))
        url = m.group(0).rstrip(".,;)")
        out.append(Markup('<a href="{0}">{0}</a>').format(url))
        out.append(escape(m.group(0)[len(url):]))
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)
