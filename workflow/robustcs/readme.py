"""The ``readme`` target: a run's findings, headline table and linear-fit figure as a README block.

It writes outside ``results/`` only when asked by name, and only for the demo run in the checkout (the rule
decides: ``workflow/rules/report.smk``); every other run gets its block in ``results/readme/README.md``. It returns
the files whose content it changed, which the rule prints.
"""

from __future__ import annotations

import os
from pathlib import Path

from .util import atomic_path, replace_marked_block

MARKER = "headline"


def block(findings: str, headline: str, figure: str) -> str:
    """The README block: the findings table, the per-variant table and the figure (``figure``: its link)."""
    return (f"The papers' findings on this run (`results/tables/findings.md`):\n\n{findings.strip()}\n\n"
            f"Per variant (`results/tables/headline.md`):\n\n{headline.strip()}\n\n"
            f"![In- vs out-of-distribution SSIM of every variant with the linear fits]({figure})")


def _write(path: Path, data: bytes, changed: list[str]) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    with atomic_path(path, suffix=path.suffix or None) as tmp:
        tmp.write_bytes(data)
    changed.append(str(path))


def update(headline: Path, findings: Path, figure: Path, out: dict, readme: Path, create: bool = False) -> list[str]:
    """Copy the tables and figure to ``out['table']``, ``out['findings']``, ``out['figure']`` and put the block
    between ``readme``'s ``<!-- headline:begin/end -->`` markers (a new file holding only the block if ``create``
    and it does not exist). Nothing is written if the README has no markers. Returns the files changed."""
    headline, findings, figure, readme = Path(headline), Path(findings), Path(figure), Path(readme)
    if readme.is_file():
        before = readme.read_text()
    elif create:
        before = f"<!-- {MARKER}:begin -->\n<!-- {MARKER}:end -->\n"
    else:
        raise FileNotFoundError(f"{readme.resolve()}: no README to update (run the readme target in the checkout)")
    link = Path(os.path.relpath(Path(out["figure"]).resolve(), readme.resolve().parent)).as_posix()
    text = replace_marked_block(before, MARKER, block(findings.read_text(), headline.read_text(), link),
                                source=str(readme))  # fails before any write
    changed: list[str] = []
    _write(Path(out["table"]), headline.read_bytes(), changed)
    _write(Path(out["findings"]), findings.read_bytes(), changed)
    _write(Path(out["figure"]), figure.read_bytes(), changed)
    _write(readme, text.encode(), changed)
    return changed
