"""Text from traces made safe to print on an operator's terminal.

Span names, attribute values and feedback come from whoever can send spans or feedback. Printed raw, a
name such as ``a\\x1b[31m`` would send an escape sequence to the terminal (colours, cursor moves, a changed
window title, on some terminals worse), and ``[red]`` would be read as rich markup. :func:`escape` shows
both as text: control and format characters (C0, DEL, C1, bidirectional overrides, line and paragraph
separators) become visible ``\\xNN``/``\\uNNNN`` escapes, then rich markup is escaped.
"""

from __future__ import annotations

import re
import unicodedata

from rich.markup import escape as escape_markup

__all__ = ["escape", "visible"]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def visible(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every control or format character written as a visible escape (``\\x1b``); with
    ``keep_lines`` newlines and tabs stay (indented JSON shown whole)."""
    if keep_lines:
        return "\n".join(_UNSAFE.sub(_escaped, line.replace("\t", "    ")) for line in text.split("\n"))
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if unicodedata.category(char) in ("Cf", "Zl", "Zp", "Cc") else char


def escape(text: str, *, keep_lines: bool = False) -> str:
    """``text`` safe inside rich markup printed to a terminal: no control characters, no markup."""
    return escape_markup(visible(text, keep_lines=keep_lines))
