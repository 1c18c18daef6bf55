"""HTML part of every e-mail, made from its text part by a Jinja template (``templates/email/message.html``).

Every message is written once, as plain text, by the code that sends it; this module turns that text into a
simple, accessible HTML alternative: paragraphs, bullet lists ("  - item"), facts ("  When: ...") as a table, and
links — a paragraph whose only content is a link, or which ends with one, gets it as a button. The text part stays
the authoritative one (and what tests read). The template's own words are translated (``{% trans %}``) into the
language the mail is being written in (authsvc.i18n.mail), and ``<html lang>`` names it. A theme folder may override ``email/message.html`` like any page.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

_URL = re.compile(r"https?://[^\s<>\"']+")
# A fact line: two or more spaces, a short label that starts with a capital letter of any script ("When", "Wann",
# "Når", "Área", "Ubicación"), a colon, a value. Ordinary indented text does not qualify: the label may hold letters,
# digits, spaces and ()/-' only (no sentence punctuation), at most five words, and every line of the paragraph must be
# a fact (see blocks()).
_FACT = re.compile(r"^\s{2,}([^\W\d_][\w ()/'-]{0,30}):\s+(.+)$")
_ITEM = re.compile(r"^\s*-\s+(.+)$")


def _fact(line: str):
    m = _FACT.match(line)
    if m is None or not m.group(1)[0].isupper() or len(m.group(1).split()) > 5:
        return None
    return m


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
        if all(_fact(ln) for ln in lines):
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
        # The template's own words in the mail's language: the sender builds and sends inside
        # authsvc.i18n.mail.mail_language(), whose forced locale Flask-Babel's gettext answers in.
        self.env.add_extension("jinja2.ext.i18n")
        self.env.policies["ext.i18n.trimmed"] = True  # as babel.cfg extracts them
        self.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)

    def html(self, subject: str, body: str) -> str:
        s = self.settings
        from authsvc.i18n.mail import current_mail_locale, mail_language

        locale = current_mail_locale()  # the sender's mail_language(); English for a bare send() (nothing to guess)
        with mail_language(locale=locale):  # forced, so a send outside any request never asks for one
            return self.env.get_template("email/message.html").render(
                lang=locale.replace("_", "-"), subject=subject, blocks=blocks(body), service_name=s.service_name,
                accent=s.brand_accent or "#0b57d0", support_url=s.support_url, base_url=s.base_url)


def _gettext(message: str, **variables) -> str:
    from flask import has_app_context

    if has_app_context():
        from flask_babel import gettext

        return gettext(message, **variables)
    return message % variables if variables else message  # no app (a bare renderer): English


def _ngettext(singular: str, plural: str, num: int, **variables) -> str:
    from flask import has_app_context

    if has_app_context():
        from flask_babel import ngettext

        return ngettext(singular, plural, num, **variables)
    variables.setdefault("num", num)
    return (singular if num == 1 else plural) % variables


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
