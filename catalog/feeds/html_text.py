"""HTML descriptions to plain text, with the standard library's HTML tokenizer (html.parser).

Text is kept, markup dropped, entities decoded; block elements (paragraphs, list items, breaks,
headings, table rows) become line breaks so a description keeps its shape; script, style and
template contents are dropped. Whitespace inside a block collapses to single spaces.
"""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
        "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "th", "thead",
        "tfoot", "tr", "ul",
    }
)  # fmt: skip
_HIDDEN = frozenset({"script", "style", "template", "head", "title", "noscript"})


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._hidden_depth = 0

    def _break(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_depth += 1
        elif tag in _BLOCK:
            self._break()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self._current.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML fragment, blocks separated by newlines. Plain text passes through
    with its whitespace normalised."""
    if not html:
        return ""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    collector._break()
    return "\n".join(collector.blocks)
