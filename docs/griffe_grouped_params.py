"""A griffe extension for the docstring convention of diffsim: one entry documents several
parameters that share a meaning, ``rtol, atol: tolerances of ...``.

Google style knows one name per entry, so griffe would report ``Parameter 'rtol, atol' does
not appear in the function signature`` and drop the text. Before a docstring is parsed, this
extension writes such an entry as one entry per name with the shared description (entries in
``Args``/``Arguments``/``Parameters``/``Keyword Args``/``Other Parameters`` sections only).
"""

from __future__ import annotations

import re

import griffe

SECTIONS = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
                      r"Other Parameters):\s*$")
NAME = r"\*{0,2}[A-Za-z_]\w*"
GROUPED = re.compile(rf"^(\s+)({NAME}(?:\s*,\s*{NAME})+)(\s*(?:\([^)]*\))?\s*:)(.*)$")


WRAPPED = re.compile(rf"^\s+(?:{NAME}\s*,\s*)+$")


def _join_wrapped_names(lines: list[str]) -> list[str]:
    """A list of names wrapped over lines (``a, b,`` then ``c: ...``) as one line."""
    out = []
    for line in lines:
        if out and WRAPPED.match(out[-1]) and line.strip() and (
                len(line) - len(line.lstrip()) == len(out[-1]) - len(out[-1].lstrip())):
            out[-1] = out[-1].rstrip() + " " + line.strip()
        else:
            out.append(line)
    return out


def split_grouped(text: str) -> str:
    """``text`` with grouped parameter entries split into one entry per name."""
    lines = _join_wrapped_names(text.split("\n"))
    out, section_indent, item_indent = [], None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = SECTIONS.match(line)
        if m:
            section_indent, item_indent = len(m.group(1)), None
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None   # the section ended
        g = GROUPED.match(line) if section_indent is not None else None
        if g and (item_indent is None or len(g.group(1)) == item_indent):
            item_indent = len(g.group(1))
            body = [g.group(4)]
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or
                                      len(lines[j]) - len(lines[j].lstrip()) > item_indent):
                if not lines[j].strip() and (j + 1 >= len(lines) or len(lines[j + 1]) - len(
                        lines[j + 1].lstrip()) <= item_indent):
                    break
                body.append(lines[j])
                j += 1
            for name in re.split(r"\s*,\s*", g.group(2)):
                out.append(g.group(1) + name + g.group(3) + body[0])
                out.extend(body[1:])
            i = j
            continue
        if section_indent is not None and line.strip() and item_indent is None:
            item_indent = indent
        out.append(line)
        i += 1
    return "\n".join(out)


class GroupedParams(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        doc = obj.docstring
        if doc is not None and "," in doc.value:
            doc.value = split_grouped(doc.value)
