"""The texts of the HTML report are valid reStructuredText for every shipped config: its introduction
(workflow/report/workflow.rst, the Snakefile's `report:`) and every caption under workflow/report/, rendered
the way `snakemake --report` renders them (Jinja with Snakemake's settings and context, then docutils to HTML),
give no docutils system message (warning or error), and the introduction lists the run's datasets as a bullet
list. No workflow runs: the configs are loaded by the study model, with the folders of measured data replaced by
empty ones."""

import html as html_lib
import inspect
import io
import re
import textwrap
import types
from pathlib import Path

import jinja2
import pytest
import yaml
from docutils.core import publish_parts
from snakemake import report as smk_report
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params, ResourceList, Wildcards
from snakemake.utils import update_config

from robustcs import paths
from robustcs.study import Study

from conftest import ROOT, TINY_CONFIG

REPORT = ROOT / "workflow" / "report"
INTRODUCTION = REPORT / "workflow.rst"
MEASURED = {"fastmri": "fastMRI multi-coil HDF5 files", "stanford": "Stanford 3D FSE ISMRMRD raw data"}

# Snakemake's own call (publish_parts(..., writer_name="html")) warns of a future docutils API; reproduced as is.
pytestmark = pytest.mark.filterwarnings('ignore:Argument "writer_name":PendingDeprecationWarning')

# Every shipped config (overlays merged in order, as `--configfile a b` does); "mixed": the real study with one
# embedded demo dataset added (demo block left to its defaults).
CONFIGS = {
    "demo": ["config/config.yaml"],
    "demo_full": ["config/demo_full.yaml"],
    "tiny": [str(TINY_CONFIG.relative_to(ROOT))],
    "real": ["config/real.yaml"],
    "real_full": ["config/real.yaml", "config/real_full.yaml"],
    "rehearsal": ["config/real.yaml", "config/rehearsal.yaml"],
    "rehearsal_ci": ["config/real.yaml", "config/rehearsal.yaml", "tests/config/rehearsal_ci.yaml"],
    "mixed": ["config/real.yaml"],
}


# ---- Snakemake's way of rendering report texts ------------------------------------------------------------


def _snakemake_environment() -> jinja2.Environment:
    """The Jinja environment snakemake.report.auto_report renders captions and the introduction with
    (test_the_rendering_follows_snakemake checks the installed Snakemake still sets these options)."""
    return jinja2.Environment(trim_blocks=True, lstrip_blocks=True)


def _rst_links() -> str:
    """The link targets Snakemake appends to every report text before templating it, taken from the installed
    snakemake.report.auto_report (so that a text is checked with exactly what Snakemake appends)."""
    source = inspect.getsource(smk_report.auto_report)
    match = re.search(r'rst_links\s*=\s*textwrap\.dedent\(\s*"""(.*?)"""\s*\)', source, re.S)
    assert match, "snakemake.report.auto_report no longer defines rst_links as this test expects"
    return textwrap.dedent(match.group(1))


def _report_entries() -> list[dict]:
    """Every result the rules flag for the report: rule, output path, caption file, category, and the experiment
    whose example case the rule passes as params.case (None if it passes none)."""
    entries = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), re.S | re.M):
            case = re.search(r'case\s*=\s*lambda \w+: list\(example_case\("(\w+)"\)\)', body)
            for path, caption, category in re.findall(
                    r'report\(\s*(paths\.\w+\([^)]*\)),\s*caption="\.\./report/([^"]+)",\s*category="([^"]+)"', body):
                path = eval(path, {"paths": paths})  # the rule's robustcs.paths call, e.g. paths.table("clean.csv")
                entries.append({"rule": rule, "path": path, "caption": caption, "category": category,
                                "case": case.group(1) if case else None})
    return entries


def _links_context(entries: list[dict]) -> tuple[dict, list]:
    """The `categories` and `files` a report of these results gives the templates (what rst_links lists)."""
    categories: dict = {}
    for e in entries:
        categories.setdefault(smk_report.Category(e["category"]), {}).setdefault(smk_report.Category(None), [])
    files = [types.SimpleNamespace(target=Path(e["path"]).name, path=e["path"]) for e in entries]
    return categories, files


def _introduction_html(config: dict, categories: dict, files: list) -> str:
    """The introduction as auto_report renders it: the text plus rst_links, templated with a `snakemake` whose
    only attribute is the config, then published to HTML (the html_body part, title included)."""
    snakemake = type("Snakemake", (), {"config": config})
    text = _snakemake_environment().from_string(INTRODUCTION.read_text() + _rst_links()).render(
        snakemake=snakemake, categories=categories, files=files)
    return publish_parts(text, writer_name="html")["html_body"]


def _caption_html(caption: Path, config: dict, rule: str, params: dict, categories: dict, files: list) -> str:
    """A caption rendered by Snakemake's own code (snakemake.report.FileRecord.render) for a job of ``rule`` with
    these params and the run's config."""
    job = types.SimpleNamespace(
        input=InputFiles(), output=OutputFiles(), params=Params(fromdict=params), threads=1,
        resources=ResourceList(), log=Log(), rule=types.SimpleNamespace(module_globals={"config": config}, name=rule))
    source = types.SimpleNamespace(path=caption, get_path_or_uri=lambda secret_free=True: str(caption))
    cache = types.SimpleNamespace(open=lambda src: io.StringIO(src.path.read_text()))
    record = types.SimpleNamespace(raw_caption=source, job=job, raw_wildcards=Wildcards(),
                                   workflow=types.SimpleNamespace(sourcecache=cache))
    smk_report.FileRecord.render(record, _snakemake_environment(), _rst_links(), categories, files)
    return record.caption


def _system_messages(html: str) -> list[str]:
    """The docutils system messages (warnings and errors; Snakemake keeps docutils' default report level,
    so each is printed into the page) of a rendered text, as plain text."""
    blocks = re.findall(r'<div class="system-message[^"]*">(.*?)</div>', html, re.S)
    found = [html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", b).split())) for b in blocks]
    if "System Message" in html and not found:  # a layout this parser does not know: report the whole text
        found = [html_lib.unescape(" ".join(re.sub(r"<[^>]+>", " ", html).split()))]
    return found


# ---- the configs -------------------------------------------------------------------------------------------


def _load(name: str, tmp_path: Path) -> dict:
    """The filled-in config of a shipped run (study model: schema defaults and checks). Data folders and the
    pathology annotation file, which exist only on a machine with the data, become empty folders and a
    one-box file under tmp_path (each distinct folder its own, so splits sharing one keep sharing it); a
    checkpoint's missing SHA-256 a placeholder."""
    cfg: dict = {}
    for f in CONFIGS[name]:
        update_config(cfg, yaml.safe_load((ROOT / f).read_text()) or {})
    if name == "mixed":
        cfg["datasets"]["toy"] = {"kind": "demo", "demo": {}}
    folders: dict = {}
    for ds in cfg["datasets"].values():
        for src in (ds.get("splits") or {}).values():
            if "path" in src:
                folder = folders.setdefault(src["path"], tmp_path / f"data{len(folders)}")
                folder.mkdir(exist_ok=True)
                src["path"] = str(folder)
    if "annotations" in cfg.get("pathology", {}):
        boxes = tmp_path / "boxes.csv"
        label = (cfg["pathology"].get("labels") or ["Tear"])[0]
        boxes.write_text(f"file,slice,study_level,x,y,width,height,label\nfile1000001.h5,0,No,10,10,4,4,{label}\n")
        cfg["pathology"]["annotations"] = str(boxes)
    for method in cfg["methods"].values():  # published checkpoints' checksums are the user's to fill in, too
        if "checkpoint" in method:
            method["checkpoint"].setdefault("sha256", "0" * 64)
    return Study.from_config(cfg).config


def _example_case(study: Study, experiment: str) -> list[str]:
    """params.case of an example figure (report.smk's example_case): the experiment's first dataset and mask
    and a test volume's stem, named as the demo generator names them (for measured data, a fastMRI-style stem)."""
    block = study.experiment(experiment)
    dataset, mask = block["datasets"][0], block["masks"][0]
    demo = study.config["datasets"][dataset]["kind"] == "demo"
    return [dataset, mask, f"{dataset}_test_000" if demo else "file1000001"]


def _configured(caption_text: str, config: dict) -> bool:
    """False when the caption reads a config block this run lacks: its rule is then not part of the run (every
    experiment's rules exist only when its block is configured), so the report never renders it."""
    return set(re.findall(r'snakemake\.config\["(\w+)"\]', caption_text)) <= set(config)


# ---- tests -------------------------------------------------------------------------------------------------


def test_the_rendering_follows_snakemake():
    """The installed Snakemake renders report texts with the Jinja options and links this test reproduces, and
    every caption file is one the rules flag for the report."""
    source = inspect.getsource(smk_report.auto_report)
    call = re.search(r"Environment\((.*?)\)", source, re.S)
    assert call and re.findall(r"(\w+)=True", call.group(1)) == ["trim_blocks", "lstrip_blocks"], call
    assert ".. _Workflow:" in _rst_links()
    entries = _report_entries()
    assert {e["caption"] for e in entries} == {p.name for p in REPORT.glob("*.rst")} - {INTRODUCTION.name}
    assert {e["case"] for e in entries} == {None, "attacks", "features"}


def test_a_text_with_an_rst_error_is_caught(tmp_path):
    """The check sees a system message both in the introduction's path and in a caption's: a list that starts on
    the lead-in's line with an indented continuation (the introduction's old fault) is flagged."""
    broken = tmp_path / "broken.rst"
    broken.write_text("Data of this run:\n* **a** first line\n  (continued).* **b** next\n")
    categories, files = _links_context(_report_entries())
    html = _caption_html(broken, {"seed": 0}, "plot", {}, categories, files)
    assert any("Unexpected indentation" in m for m in _system_messages(html)), html
    fine = tmp_path / "fine.rst"
    fine.write_text("Data of this run:\n\n* **a** first line\n  (continued).\n* **b** next\n")
    assert _system_messages(_caption_html(fine, {"seed": 0}, "plot", {}, categories, files)) == []


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_introduction_is_valid_rst_listing_the_datasets(name, tmp_path):
    config = _load(name, tmp_path)
    categories, files = _links_context(_report_entries())
    html = _introduction_html(config, categories, files)
    assert _system_messages(html) == [], f"{name}: {_system_messages(html)}"
    assert re.search(r"<p>Data of this run:</p>\s*<ul", html), html
    items = re.findall(r"<li>(.*?)</li>", html, re.S)
    names = sorted(config["datasets"])
    assert [re.search(r"<strong>(\w+)</strong>", item).group(1) for item in items] == names, items
    for dataset, item in zip(names, items):
        kind = config["datasets"][dataset]["kind"]
        text = " ".join(re.sub(r"<[^>]+>", " ", item).split())
        if kind == "demo":
            coils = config["datasets"][dataset]["demo"].get("coils", 8)
            assert f"(embedded demo): simulated {coils}-coil k-space" in text and " px, noise " in text, text
        else:
            assert MEASURED[kind] in text and "splits " in text, text
    kinds = {ds["kind"] for ds in config["datasets"].values()}
    closing = ("The demo datasets above are simulations" if len(kinds) > 1 and "demo" in kinds else
               "All data of this run are the embedded demo" if kinds == {"demo"} else
               "All data of this run are measured multi-coil k-space")
    assert closing in html, html


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_caption_is_valid_rst(name, tmp_path):
    config = _load(name, tmp_path)
    study = Study(config)
    entries = _report_entries()
    categories, files = _links_context(entries)
    for entry in entries:
        caption = REPORT / entry["caption"]
        if not _configured(caption.read_text(), config):
            continue
        params = {"case": _example_case(study, entry["case"])} if entry["case"] else {}
        html = _caption_html(caption, config, entry["rule"], params, categories, files)
        assert html.strip(), f"{name}: {entry['caption']} rendered empty"
        assert _system_messages(html) == [], f"{name}: {entry['caption']}: {_system_messages(html)}"
