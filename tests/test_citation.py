"""CITATION.cff: the Citation File Format's required fields, both papers' venues, volumes and pages, and the
BibTeX block of docs/cite.md agreeing with it."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: (title start, PMLR volume, first page, last page, year, conference) of the two papers
PAPERS = [("Measuring Robustness", 139, 2433, 2444, 2021, "ICML 2021"),
          ("Test-Time Training Can Close", 162, 4754, 4776, 2022, "ICML 2022")]


def _cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def test_citation_cff_has_the_required_fields_and_a_real_author():
    cff = _cff()
    for key in ("cff-version", "message", "title", "authors"):  # the format's required keys (1.2.0)
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(cff["version"]))
    for author in cff["authors"]:  # a person (family-names) or an entity (name), no placeholder
        assert author.get("family-names") or author.get("name"), author
        assert "todo" not in str(author).lower() and "placeholder" not in str(author).lower()


def test_both_papers_are_conference_papers_with_venue_volume_and_pages():
    refs = _cff()["references"]
    assert len(refs) == 2
    for (title, volume, start, end, year, conference), ref in zip(PAPERS, refs):
        assert ref["title"].startswith(title)
        assert ref["type"] == "conference-paper"
        assert (ref["volume"], ref["start"], ref["end"], ref["year"]) == (volume, start, end, year)
        assert conference in ref["conference"]["name"] and ref["publisher"]["name"] == "PMLR"
        assert ref["collection-title"].startswith("Proceedings of the") and ref["collection-type"] == "proceedings"
        assert ref["url"].startswith(f"https://proceedings.mlr.press/v{volume}/")
        surnames = [a["family-names"] for a in ref["authors"]]
        assert surnames[0] == "Darestani" and surnames[-1] == "Heckel"


def test_the_bibtex_of_docs_cite_agrees_with_citation_cff():
    text = (ROOT / "docs" / "cite.md").read_text(encoding="utf-8")
    entries = re.findall(r"@(\w+)\{([^,]+),(.*?)\n\}", text, re.S)
    assert [kind for kind, _, _ in entries] == ["inproceedings", "inproceedings", "software"]
    for (title, volume, start, end, year, _), (_, _, body) in zip(PAPERS, entries):
        fields = dict(re.findall(r"(\w+)\s*=\s*\{(.*?)\},?\n", body + "\n", re.S))
        assert " ".join(fields["title"].split()).startswith(title)
        assert (fields["volume"], fields["pages"], fields["year"]) == (str(volume), f"{start}--{end}", str(year))
    assert _cff()["authors"][0]["name"] in entries[2][2]
