"""The HTML report of the tiny run, opened in a real headless browser: it renders, and every figure and
table the workflow flags for it is listed under its category with its caption."""

import json
import re
import subprocess

import pytest
import yaml

from conftest import ROOT, TINY_CONFIG, require_tool, snakemake

# Appended to a copy of the report: once the page's scripts have rendered it, click every category of the
# menu (as a reader would), record what each lists, go back to the menu, and write the record into the page.
WALK = """
<script>
window.addEventListener("load", async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const record = {menu: [], categories: {}, figures: {}, error: null};
  try {
    const links = () => Array.from(document.querySelectorAll("a"));
    for (let i = 0; i < 100 && !links().some((a) => a.textContent.trim() in categories); i++) await sleep(100);
    record.menu = links().map((a) => a.textContent.trim()).filter((t) => t);
    for (const name of Object.keys(categories)) {
      const link = links().find((a) => a.textContent.trim() === name);
      if (!link) { record.categories[name] = null; continue; }
      link.click();
      await sleep(300);
      record.categories[name] = document.body.innerText;
      // every figure of the category: its info button (caption) and its view button (the image itself)
      const row = (file) => Array.from(document.querySelectorAll("tr")).find(
        (tr) => tr.querySelector("td") && tr.querySelector("td").textContent.trim() === file);
      const files = Array.from(document.querySelectorAll("tr td:first-child"))
        .map((td) => td.textContent.trim()).filter((t) => t.endsWith(".png"));
      for (const file of files) {
        row(file).querySelectorAll("a")[0].click();  // view: the image in the main panel
        await sleep(300);
        const shown = Array.from(document.querySelectorAll("img")).filter(
          (img) => img.src.startsWith("data:image/png") && img.naturalWidth > 100).length;
        const buttons = row(file).querySelectorAll("a");
        buttons[buttons.length - 1].click();  // info: the caption in the side panel
        await sleep(200);
        const text = document.body.innerText;
        app.showCategory(name);
        await sleep(200);
        record.figures[file] = {info: text, images: shown};
      }
      app.setView({navbarMode: "menu", category: undefined, subcategory: undefined});
      await sleep(300);
    }
  } catch (err) { record.error = String(err); }
  const out = document.createElement("pre");
  out.id = "robustcs-walk";
  out.textContent = JSON.stringify(record);
  document.body.appendChild(out);
});
</script>
"""


def _browse(html, tmp_path):
    chromium = require_tool("chromium")
    page = tmp_path / "walk.html"
    head, tail = html.read_text().rsplit("</body>", 1)  # the last one: scripts in the page contain the string too
    page.write_text(head + WALK + "</body>" + tail)
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="robustcs-walk">(.*?)</pre>', proc.stdout, re.S)
    assert match, "the report did not finish rendering (no record of the walk through its menu)"
    import html as html_lib

    return json.loads(html_lib.unescape(match.group(1)))


@pytest.mark.slow
def test_report_renders_and_lists_every_figure(tiny_run, tmp_path):
    report = tmp_path / "report.html"
    snakemake("--configfile", str(TINY_CONFIG), "--directory", str(tiny_run), "--report", str(report))
    record = _browse(report, tmp_path)
    assert record["error"] is None, record["error"]
    figures = sorted(p.name for p in (tiny_run / "results" / "figures").glob("*.png"))
    assert len(figures) == 6
    expected = {
        "1 Headline": ["headline.csv", "findings.csv"],
        "2 Clean quality": ["clean.csv"],
        "3 Adversarial perturbations": ["adversarial.csv", "adversarial_drops.csv", "adversarial.png", "adversarial_examples.png"],
        "4 Small features": ["features_summary.csv", "features_vs_ssim.png", "feature_examples.png"],
        "5 Distribution shifts": ["shift_fit.csv", "shifts.png"],
        "6 Test-time training": ["ttt_summary.csv", "ttt.png"],
        "7 Runtime": ["runtime.csv"],
    }
    assert sorted(f for names in expected.values() for f in names if f.endswith(".png")) == figures
    for category, names in expected.items():
        assert category in record["menu"], f"menu lacks {category!r}: {record['menu']}"
        listing = record["categories"][category]
        assert listing, f"category {category!r} shows nothing"
        for name in names:
            assert name in listing, f"{name} is not listed under {category!r}:\n{listing[:2000]}"
    # each figure shows as an image, and its caption (rendered with the run's config) beside it
    captions = {"shifts.png": "Distribution shifts: one panel per shift (shift_a, hardest)",
                "adversarial.png": "attacks on tiny_src with ε ∈ 0.05.", "adversarial_examples.png": "one test slice (tiny_src_test_000",
                "features_vs_ssim.png": "features of sizes 3 px and contrasts 0.25", "feature_examples.png": "one featured test slice",
                "ttt.png": "Test-time training on the shifts shift_a:"}
    assert sorted(record["figures"]) == [f"results/figures/{f}" for f in figures]
    for name, text in captions.items():
        shown = record["figures"][f"results/figures/{name}"]
        assert shown["images"] >= 1, f"{name} is not displayed as an image"
        assert " ".join(text.split()) in " ".join(shown["info"].split()), f"caption of {name} missing:\n{shown['info'][:1500]}"


def _introduction(config: dict) -> str:
    """The report's introduction as Snakemake renders it (Jinja with the run's config, then reStructuredText)."""
    import types

    import jinja2
    from docutils.core import publish_parts

    text = jinja2.Template((ROOT / "workflow" / "report" / "workflow.rst").read_text()).render(
        snakemake=types.SimpleNamespace(config=config))
    html = publish_parts(text, writer_name="html", settings_overrides={"halt_level": 2, "report_level": 2})["body"]
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_report_introduction_describes_the_run_data():
    """A demo run says its data are simulated; a run on measured files names them and does not."""
    from robustcs.demo import DemoSpec

    tiny = _introduction(yaml.safe_load(TINY_CONFIG.read_text()))
    assert "simulated 4-coil k-space of real MR magnitude images" in tiny and "tiny_shift" in tiny
    assert "pipeline working, not the papers' results" in tiny and "measured" not in tiny
    real = _introduction(yaml.safe_load((ROOT / "config" / "real.yaml").read_text()))
    assert "simulated" not in real and "demo" not in real
    for words in ("knee (fastMRI multi-coil HDF5 files", "stanford (Stanford 3D FSE ISMRMRD raw data",
                  "All data of this run are measured multi-coil k-space"):
        assert words in real, real
    # a demo block without settings is described with DemoSpec's defaults, and a mixed run says which is which
    mixed = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    mixed["datasets"]["toy"] = {"kind": "demo", "demo": {}}
    text = _introduction(mixed)
    spec = DemoSpec()
    assert f"simulated {spec.coils}-coil k-space" in text and f"{spec.size} px, noise {spec.noise}" in text
    assert "The demo datasets above are simulations" in text
