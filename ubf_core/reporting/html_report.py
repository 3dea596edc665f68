"""A self-contained HTML report: headings, paragraphs, tables and PNG pictures embedded as data URIs.

One file a person can open anywhere (mail it, attach it to an MLflow run): no scripts, no external style sheets,
no links to files beside it. Written to a temporary name, then renamed.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } .note { font-size: 0.85em; color: #555; } code { background: #f4f4f4; }
"""


def format_value(value) -> str:
    """Numbers to 4 significant digits (integers as they are), everything else as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Report:
    """An HTML document assembled block by block; :meth:`write` embeds every picture."""

    title: str
    blocks: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Report":
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def text(self, text: str, note: bool = False) -> "Report":
        """A paragraph; ``note``: small grey print (sources, caveats)."""
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, rows: list[dict], columns: list[str] | None = None, caption: str = "") -> "Report":
        """Rows of {column: value}; ``columns`` fixes the order (default: first-seen order over all rows)."""
        if columns is None:
            columns = list(dict.fromkeys(c for row in rows for c in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(format_value(row.get(c)))}</td>" for c in columns)
                       + "</tr>" for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.blocks.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def image(self, path: str | Path, caption: str = "") -> "Report":
        """A PNG embedded as a data URI (a missing file is a visible note, not a broken link)."""
        path = Path(path)
        if not path.is_file():
            return self.text(f"(picture not available: {path.name})", note=True)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.blocks.append(f'<figure><img alt="{html.escape(caption or path.name)}" '
                           f'src="data:image/png;base64,{data}">{cap}</figure>')
        return self

    def html(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.blocks) + "\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Write the document atomically (temporary name, then rename); returns ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.html(), encoding="utf-8")
        os.replace(tmp, path)
        return path
