"""Self-contained HTML: plotly.js embedded once, sortable tables, no network at all.

Kept separate from _report.py so the page layout can change without touching which
sections exist, and so the offline guarantee is checked in one place.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go

__all__ = ["Section", "render_figure", "render_page", "render_table"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1400px;padding:0 1.5rem 3rem;color:#222}
h1{margin-top:1.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
nav a{margin-right:.8rem;white-space:nowrap}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.7rem 1rem;border-radius:4px;
font-weight:600}
.reason{color:#666;font-style:italic;background:#f6f6f6;padding:.5rem .8rem;border-radius:4px}
.tablewrap{max-height:480px;overflow:auto;margin:.6rem 0}
table.sortable{border-collapse:collapse;font-size:.85rem}
table.sortable th,table.sortable td{border:1px solid #ddd;padding:.2rem .5rem;text-align:right}
table.sortable th{background:#f2f2f2;cursor:pointer;position:sticky;top:0;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
table.sortable td.s{text-align:left}
.caption{color:#555;font-size:.9rem;margin:.2rem 0 .8rem}
.warning{color:#7a4b00;background:#fff4e0;padding:.5rem .8rem;border-radius:4px}
.headline{font-size:1.15rem;line-height:1.5;background:#eef5ff;padding:.7rem 1rem;border-radius:6px}
table.params{border-collapse:collapse;margin:.5rem 0}
table.params td,table.params th{border-bottom:1px solid #ddd;padding:.2rem .8rem;text-align:left}
pre.cmd{background:#f4f4f4;padding:.6rem .8rem;border-radius:4px;overflow-x:auto}
"""

# Click a header to sort; numbers compare numerically (data-v holds the raw value).
_SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var asc=th.getAttribute('aria-sort')!=='ascending', b=t.tBodies[0];
    t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    var rows=Array.prototype.slice.call(b.rows), v=function(r){
      var c=r.cells[i], s=c.getAttribute('data-v'), n=parseFloat(s);
      return (s!==''&&!isNaN(n))?n:(s===''?null:s)};
    rows.sort(function(x,y){var a=v(x),c=v(y);if(a===c)return 0;if(a===null)return 1;
      if(c===null)return -1;var r=(typeof a===typeof c)?(a<c?-1:1):(typeof a==='number'?-1:1);
      return asc?r:-r});
    rows.forEach(function(r){b.appendChild(r)});});});});
"""


@dataclass
class Section:
    """One report section: an anchor id, a heading and HTML blocks (or a reason)."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)
    n_figures: int = 0

    def add_figure(self, fig: go.Figure) -> None:
        self.blocks.append(render_figure(fig))
        self.n_figures += 1

    def add_table(self, df: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(render_table(df, caption))

    def add_reason(self, text: str) -> None:
        self.blocks.append(f'<p class="reason">{html.escape(text)}</p>')

    def add_html(self, block: str) -> None:
        """Trusted HTML made by this package (every value in it already escaped)."""
        self.blocks.append(block)

    def add_warning(self, text: str) -> None:
        """A caveat the reader must see before the figure (e.g. reduced precision)."""
        self.blocks.append(f'<p class="warning">{html.escape(text)}</p>')

    def add_text(self, text: str) -> None:
        self.blocks.append(f'<p class="caption">{html.escape(text)}</p>')


def render_figure(fig: go.Figure) -> str:
    """A plotly div without plotly.js (the page embeds it once)."""
    out: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="figure">{out}</div>'


def _cell(v: Any) -> tuple[str, str, bool]:
    """(shown text, sort value, is-text) of one table cell."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–", "", False
    if isinstance(v, bool):
        return str(v), str(v), True
    if isinstance(v, int | float) or hasattr(v, "dtype"):
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v), str(v), True
        if math.isnan(f):
            return "–", "", False
        shown = f"{int(f)}" if f.is_integer() and abs(f) < 1e15 else f"{f:.4g}"
        return shown, repr(f), False
    return str(v), str(v), True


def render_table(df: pd.DataFrame, caption: str = "") -> str:
    """A sortable HTML table; numbers shown to 4 significant digits, sorted exactly."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            shown, key, is_text = _cell(v)
            cls = ' class="s"' if is_text else ""
            cells.append(f'<td{cls} data-v="{html.escape(key)}">{html.escape(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return (
        f'{cap}<div class="tablewrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def render_page(title: str, sections: list[Section], banner: str = "", meta: str = "") -> str:
    """The whole document. plotly.js comes from the installed plotly package, inline."""
    from plotly.offline import get_plotlyjs

    n_fig = sum(s.n_figures for s in sections)
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="revstudy-figures" content="{n_fig}">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="caption">{html.escape(meta)}</p>' if meta else "",
        f'<div class="banner" id="partial-banner">{html.escape(banner)}</div>' if banner else "",
        f"<nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        parts.extend(s.blocks)
        parts.append("</section>")
    parts.append(f"<script>{_SORT_JS}</script></body></html>")
    return "\n".join(parts)
