"""Server-side SVG charts: no JavaScript, no inline style (CSP ``style-src 'self'``) — colours come from classes in
static/css/app.css. Each chart is an ``<svg role="img">`` with a title and a description, and the page renders the
same numbers as a table for screen readers and for people who prefer numbers."""

from __future__ import annotations

from markupsafe import Markup, escape


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def stacked_bars(chart_id: str, title: str, desc: str, labels: list[str], series: list[tuple[str, str, list[int]]],
                 *, width: int = 720, height: int = 220, label_every: int = 3) -> Markup:
    """Vertical stacked bars. ``series`` = [(name, css class, values per label)]."""
    pad_l, pad_b, pad_t, pad_r = 36, 24, 10, 8
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    top = nice_top(max(totals + [0]))
    step = inner_w / max(len(labels), 1)
    bar_w = max(step * 0.72, 1)
    out = _frame(chart_id, title, desc, width, height, pad_l, pad_r, pad_t, inner_h, top)
    for i, label in enumerate(labels):
        x = pad_l + i * step + (step - bar_w) / 2
        y = pad_t + inner_h
        for name, css, values in series:
            v = values[i]
            if not v:
                continue
            h = inner_h * v / top
            y -= h
            out.append(f'<rect class="{css}" x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" height="{_fmt(h)}">'
                       f'<title>{escape(label)}: {v} {escape(name)}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text class="axis" x="{_fmt(x + bar_w / 2)}" y="{height - 6}" '
                       f'text-anchor="middle">{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def histogram(chart_id: str, title: str, desc: str, buckets: list[tuple[str, int, str]], *, width: int = 360,
              height: int = 200) -> Markup:
    """``buckets`` = [(label, count, css class)]."""
    return _coloured(chart_id, title, desc, buckets, width, height)


def _coloured(chart_id, title, desc, buckets, width, height) -> Markup:
    pad_l, pad_b, pad_t, pad_r = 36, 24, 10, 8
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = nice_top(max([b[1] for b in buckets] + [0]))
    step = inner_w / max(len(buckets), 1)
    bar_w = step * 0.8
    out = _frame(chart_id, title, desc, width, height, pad_l, pad_r, pad_t, inner_h, top)
    for i, (label, v, css) in enumerate(buckets):
        x = pad_l + i * step + (step - bar_w) / 2
        h = inner_h * v / top
        if v:
            out.append(f'<rect class="{css or "bar-neutral"}" x="{_fmt(x)}" y="{_fmt(pad_t + inner_h - h)}" '
                       f'width="{_fmt(bar_w)}" height="{_fmt(h)}"><title>{escape(label)}: {v}</title></rect>')
        out.append(f'<text class="axis" x="{_fmt(x + bar_w / 2)}" y="{height - 6}" text-anchor="middle">'
                   f'{escape(label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def meter(chart_id: str, title: str, share: float, *, width: int = 240, height: int = 28) -> Markup:
    """A horizontal 0–100 % bar."""
    share = min(max(share, 0.0), 1.0)
    return Markup(
        f'<svg class="chart meter" id="{chart_id}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t"><title id="{chart_id}-t">{escape(title)}: {round(share * 100)} %</title>'
        f'<rect class="meter-bg" x="0" y="4" width="{width}" height="{height - 8}" rx="6"/>'
        f'<rect class="meter-fg" x="0" y="4" width="{_fmt(width * share)}" height="{height - 8}" rx="6"/></svg>')


def nice_top(value: float) -> int:
    """The axis maximum: the smallest 2, 4, 10, 20, 40, 100, 200… at or above ``value``, so that the ½ grid line
    is a whole number too (with one login the axis reads 2 / 1 / 0, never 1 / 0 / 0)."""
    top = 2
    while top < value:
        top = top * 2 if str(top)[0] == "2" else top * 5 // 2 if str(top)[0] == "4" else top * 2
    return top


def _frame(chart_id, title, desc, width, height, pad_l, pad_r, pad_t, inner_h, top) -> list[str]:
    """The accessible <svg> opening (title + description) and the 0 / ½ / max grid lines every chart shares."""
    out = [f'<svg class="chart" id="{chart_id}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="xMidYMid meet">',
           f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>']
    for frac in (0, 0.5, 1):
        y = pad_t + inner_h * (1 - frac)
        out.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>')
        out.append(f'<text class="axis" x="{pad_l - 6}" y="{_fmt(y + 4)}" text-anchor="end">{round(top * frac)}</text>')
    return out
