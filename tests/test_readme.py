"""The README is one screen of essentials and pointers to docs/: at most 200 lines, its first screen says what a
new user needs (the two commands, what to open, that the demo is simulated), every relative link in it and in the
docs resolves to a file the repository tracks (and to a heading there when it names one), and the block the
`readme` target rewrites is intact."""

import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT
from robustcs.util import replace_marked_block

MAX_LINES = 200
FIRST_SCREEN = 35  # lines
DOCS = ["README.md", "config/README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def links(text: str) -> list[str]:
    """Targets of the Markdown links and images in ``text`` (outside fenced code), in order."""
    found, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            found += _LINK.findall(line)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    fenced, found = False, set()
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*$", line)):
            found.add(slug(m.group(1)))
    return found


def tracked_files(root: Path) -> set[str] | None:
    """Paths git tracks under ``root`` (posix, relative), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {p for p in out.split("\0") if p}


def broken_links(text: str, source: str, root: Path, tracked: set[str] | None) -> list[str]:
    """Each relative link of ``text`` (a file at ``root/source``) that names no tracked file or no heading of it."""
    bad = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (root / source).parent / path if path else root / source
        try:
            rel = file.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:  # outside the repository
            rel = None
        if rel is None or not file.is_file() or (tracked is not None and rel not in tracked):
            bad.append(f"{source}: {target} (no such file in the repository)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            bad.append(f"{source}: {target} (no heading '#{anchor}' in {rel})")
    return bad


def test_readme_fits_its_limit():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; at most {MAX_LINES} (move detail to docs/)"


def test_first_screen_says_what_a_new_user_needs():
    screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:FIRST_SCREEN])
    for needed in ("make run", "make test", "minutes", "results/tables/findings.md", "snakemake --report", "simulated",
                   "not the papers'"):
        assert needed in screen, f"README.md: '{needed}' not within its first {FIRST_SCREEN} lines"


@pytest.mark.parametrize("source", DOCS)
def test_relative_links_resolve(source):
    bad = broken_links((ROOT / source).read_text(), source, ROOT, tracked_files(ROOT))
    assert not bad, "\n".join(bad)


def test_readme_links_reach_the_docs():
    targets = {t.partition("#")[0] for t in links((ROOT / "README.md").read_text())}
    assert {"docs/results.md", "docs/real_study.md", "docs/runtime.md", "docs/methods.md", "config/README.md",
            "docs/cite.md", "docs/demo/shifts.png"} <= targets


def test_link_check_catches_missing_files_and_headings(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## The demo's findings\n\n```\n# not a heading\n```\n")
    text = ("[ok](docs/a.md) [ok](docs/a.md#the-demos-findings) [web](https://example.org/x) ![img](docs/b.png)\n"
            "[bad](docs/a.md#not-a-heading) [gone](docs/nope.md) [out](../outside.md)\n```\n[code](x.md)\n```\n")
    bad = broken_links(text, "README.md", tmp_path, tracked={"docs/a.md"})
    assert [b.split(": ", 1)[1].split(" ")[0] for b in bad] == ["docs/b.png", "docs/a.md#not-a-heading",
                                                               "docs/nope.md", "../outside.md"]
    (tmp_path / "docs" / "b.png").write_bytes(b"")  # on disk but not tracked: a clone would not have it
    assert "docs/b.png" in broken_links(text, "README.md", tmp_path, tracked={"docs/a.md"})[0]
    assert not any("docs/b.png" in b for b in broken_links(text, "README.md", tmp_path, tracked=None))


def test_readme_keeps_the_generated_block():
    text = (ROOT / "README.md").read_text()
    replace_marked_block(text, "headline", "x", source="README.md")  # raises unless both markers occur once, in order
    screen = "\n".join(text.splitlines()[:FIRST_SCREEN])
    assert "<!-- headline:begin -->" not in screen, "the generated tables belong below the first screen"
