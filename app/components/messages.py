"""Words for the pages: errors raised as lower-case clauses shown as sentences, counts."""

from __future__ import annotations


def sentence(error: object) -> str:
    """``error``'s text with a capital letter and a full stop.

    Only the first letter changes (``str.capitalize`` would lower every other one, names and
    quoted values too), and not when the text opens with an address, which keeps its case.
    """
    text = str(error).strip()
    if "@" not in text.split(" ", 1)[0]:
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless it is one: "1 chart", "3 charts"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
