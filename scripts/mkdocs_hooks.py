"""mkdocs hooks of the documentation site: pages include the README's sections and the
repository's files instead of copying them, so each text is written once.

In a page under ``docs/``, a line of its own:

- ``<!-- readme: Producing -->``: the README section headed "Producing" (any level), up
  to the next heading of the same or a higher level, without its heading; its subheadings
  move up so that the section's own level becomes the page's (``##`` under a ``###``
  section becomes ``##``: they stay below the page title).
  ``<!-- readme: Quick start | intro -->`` stops at the section's first subheading;
  ``<!-- readme: Connecting | nested -->`` puts its subheadings one level lower still (for
  a section included under a ``##`` heading of the page).
- ``<!-- file: examples/retry_logic.py -->``: that file as a code block (its language
  from the extension); ``<!-- file: CHANGELOG.md | markdown -->`` inlines a Markdown file.

Links written for the repository's layout (``docs/guarantees.md``, ``CHANGELOG.md``,
``../CHANGELOG.md``) are rewritten for the site's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(r"^<!-- (readme|file): ([^|>]+?)(?: \| (\w+))? -->$", re.M)
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
_LANGUAGES = {".py": "python", ".toml": "toml", ".yml": "yaml", ".yaml": "yaml", ".sh": "bash"}
_LINKS = (
    (re.compile(r"\]\((?:\.\./)?CHANGELOG\.md"), "](changelog.md"),
    (re.compile(r"\]\(docs/"), "]("),
    (re.compile(r"\]\(\.\./shared/SPEC\.md\)"), "](api.md)"),
    (re.compile(r"\]\(README\.md"), "](index.md"),
)


def _lines_outside_fences(text: str) -> list[tuple[str, bool]]:
    """Each line, and whether it is inside a fenced code block."""
    result, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            result.append((line, True))
        else:
            result.append((line, fenced))
    return result


def readme_section(title: str, intro_only: bool = False, nested: bool = False) -> str:
    lines = _lines_outside_fences((ROOT / "README.md").read_text())
    start = level = None
    for i, (line, fenced) in enumerate(lines):
        match = None if fenced else _HEADING.match(line)
        if match and match.group(2) == title:
            start, level = i + 1, len(match.group(1))
            break
    if start is None or level is None:
        raise ValueError(f"README.md has no section headed {title!r}")
    body: list[str] = []
    for line, fenced in lines[start:]:
        match = None if fenced else _HEADING.match(line)
        if match and (len(match.group(1)) <= level or intro_only):
            break
        if match:  # a subsection: one level below the page title, and so on
            depth = len(match.group(1)) - level + (2 if nested else 1)
            line = "#" * min(depth, 6) + " " + match.group(2)
        body.append(line)
    return "\n".join(body).strip("\n")


def include_file(path: str, mode: str | None) -> str:
    text = (ROOT / path).read_text().rstrip("\n")
    if mode == "markdown":
        return text
    language = _LANGUAGES.get(Path(path).suffix, "")
    return f'```{language} title="{path}"\n{text}\n```'


def rewrite_links(markdown: str) -> str:
    for pattern, replacement in _LINKS:
        markdown = pattern.sub(replacement, markdown)
    return markdown


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        kind, target, mode = match.group(1), match.group(2).strip(), match.group(3)
        if kind == "readme":
            return readme_section(target, intro_only=mode == "intro", nested=mode == "nested")
        return include_file(target, mode)

    return rewrite_links(_DIRECTIVE.sub(expand, markdown))
