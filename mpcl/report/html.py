"""A self-contained HTML page: inline CSS, images embedded as base64, no script, no network."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

#: Section ids and titles, in page order. Every report has all of them (a section without
#: figures says why).
SECTIONS = {
    "training": "Training",
    "scores": "Scores",
    "distributions": "Distributions",
    "cooccurrence": "Co-occurrence",
    "prototypes": "Prototypes and alignment",
    "gates": "Gates",
    "comparison": "Comparison",
}

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #444; }
table { border-collapse: collapse; font-size: .88em; margin: .8em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #666; font-style: italic; } nav a { margin-right: 1em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; }
"""


@dataclass
class FigureItem:
    """One figure: its PNG (embedded), the other files and the data file (linked)."""

    title: str
    caption: str
    png: Path
    files: list[Path]


@dataclass
class TableItem:
    """A table (already HTML) or preformatted text, with a title."""

    title: str
    body: str
    preformatted: bool = False


@dataclass
class Page:
    """The content of a report, section by section."""

    title: str
    subtitle: str = ""
    items: dict[str, list[FigureItem | TableItem | str]] = field(
        default_factory=lambda: {key: [] for key in SECTIONS}
    )

    def add(self, section: str, item: FigureItem | TableItem | str) -> None:
        """Append a figure, a table or a note (a plain string) to ``section``."""
        if section not in self.items:
            raise KeyError(f"unknown report section {section!r}; known: {list(SECTIONS)}")
        self.items[section].append(item)


def _figure(item: FigureItem, base: Path) -> str:
    data = base64.b64encode(item.png.read_bytes()).decode("ascii")
    links = " · ".join(
        f'<a href="{html.escape(p.relative_to(base).as_posix())}">{html.escape(p.suffix[1:])}</a>'
        for p in item.files
    )
    return (
        f'<figure><img alt="{html.escape(item.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{html.escape(item.title)}.</b> {html.escape(item.caption)} "
        f'<span class="files">Files: {links}</span></figcaption></figure>'
    )


def render(page: Page, base: Path) -> str:
    """The HTML text of ``page``; file links are relative to ``base`` (the report's folder)."""
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(page.title)}</h1>",
        f"<p>{html.escape(page.subtitle)}</p>" if page.subtitle else "",
        f"<nav>{nav}</nav>",
    ]
    for key, title in SECTIONS.items():
        parts.append(f'<section id="{key}"><h2>{title}</h2>')
        items = page.items[key]
        if not items:
            parts.append('<p class="note">Nothing to show for this report.</p>')
        for item in items:
            if isinstance(item, FigureItem):
                parts.append(_figure(item, base))
            elif isinstance(item, TableItem):
                parts.append(f"<h3>{html.escape(item.title)}</h3>")
                body = f"<pre>{html.escape(item.body)}</pre>" if item.preformatted else item.body
                parts.append(body)
            else:
                parts.append(f'<p class="note">{html.escape(item)}</p>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"
