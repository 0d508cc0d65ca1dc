"""The executed chapters in book/chapters are the chapter sources, run."""

import json
import re

import jupytext
import pytest
import yaml

from reprobook.chapters import CHAPTERS, is_stale
from reprobook.claims import read_claims
from reprobook.common import REPO_ROOT


def code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_notebook_has_the_sources_code(slug):
    chapter = CHAPTERS[slug]
    assert chapter.source.exists(), f"missing chapter source {chapter.source}"
    assert chapter.book_notebook.exists(), f"run `make execute`: {chapter.book_notebook} is missing"
    source = jupytext.read(chapter.source)
    executed = jupytext.read(chapter.book_notebook)
    assert code_cells(executed) == code_cells(source), (
        f"{chapter.book_notebook.name} was executed from another version of {chapter.source.name}; "
        "re-run `make execute`"
    )


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_notebook_is_up_to_date_with_its_inputs(slug):
    chapter = CHAPTERS[slug]
    assert not is_stale(chapter), (
        f"{chapter.book_notebook.name} is stale: its source, src/reprobook or results/{slug} changed "
        "since it was executed; re-run `make execute` and commit the notebook"
    )


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_shared_subpackages_a_chapter_imports_are_declared(slug):
    # Staleness hashes the chapter's own subpackage and the shared ones it declares in `uses`;
    # an undeclared import would let the notebook go stale unnoticed.
    chapter = CHAPTERS[slug]
    package = REPO_ROOT / "src" / "reprobook"
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    texts = [chapter.source.read_text()] + [p.read_text() for p in (package / slug).rglob("*.py")]
    imported = set()
    for text in texts:
        imported |= set(re.findall(r"from \.\.(\w+)", text)) | set(re.findall(r"reprobook\.(\w+)", text))
    undeclared = (imported & subpackages) - {slug, *chapter.uses}
    assert not undeclared, f"chapter {slug} imports {sorted(undeclared)}: add them to its Chapter(uses=...)"


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_notebook_ran_clean(slug):
    nb = json.loads(CHAPTERS[slug].book_notebook.read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell raised: {out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", f"stderr in the book: {''.join(out['text'])[:300]}"


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_chapter_has_parameters_cell(slug):
    nb = jupytext.read(CHAPTERS[slug].source)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("preset", "overrides", "seed", "device"):
        assert f"{name} =" in tagged[0].source


def test_toc_lists_every_chapter_and_nothing_missing():
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    for chapter in CHAPTERS.values():
        assert f"book/chapters/{chapter.name}" in files
    for f in files + [toc["root"]]:
        assert any((REPO_ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")), f"_toc.yml names missing {f}"


def test_scoreboard_lists_every_chapters_claims():
    text = (REPO_ROOT / "book" / "scoreboard.md").read_text()
    for chapter in CHAPTERS.values():
        for claim in read_claims(chapter.book_claims):
            assert claim["name"] in text


def test_environment_yml_pins_match_requirements():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [
        line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(pip_section) == sorted(reqs)
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_one_title_per_chapter(slug):
    # The sidebar and search show the chapter's H1, `reprobook list` and the scoreboard the registry's
    # title, the intro links to it: all the same words.
    chapter = CHAPTERS[slug]
    first = jupytext.read(chapter.source).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.splitlines()[0] == f"# {chapter.number:02d} · {chapter.title}"
    intro = (REPO_ROOT / "book" / "intro.md").read_text()
    assert f"[{chapter.title}](chapters/{chapter.name}.ipynb)" in intro


@pytest.mark.parametrize("slug", list(CHAPTERS))
def test_chapter_cites_its_paper_and_ends_with_summary_and_exercises(slug):
    chapter = CHAPTERS[slug]
    cells = jupytext.read(chapter.source).cells
    opening = cells[0].source
    assert "arxiv.org/abs/" in opening, "the chapter opens with the paper's citation and arXiv link"
    assert "shared/seeds" not in chapter.source.read_text()
    headings = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings[-2:] == ["## Summary", "## Exercises"], headings[-3:]
    report = max(i for i, c in enumerate(cells) if c.cell_type == "code" and "claims.report(" in c.source)
    assert all(c.cell_type == "markdown" for c in cells[report + 1:]), "nothing runs after the claims table"
    exercises = "\n".join(c.source for c in cells[report + 1:])
    assert exercises.count(f"reprobook run {slug}") >= 2


def test_every_citation_has_a_bibliography_entry():
    import re as _re

    bib = (REPO_ROOT / "book" / "references.bib").read_text()
    keys = set(_re.findall(r"@\w+\{([^,\s]+),", bib))
    assert len(keys) == len(_re.findall(r"@\w+\{", bib)), "duplicate or malformed bibtex keys"
    for chapter in CHAPTERS.values():
        cited = set()
        for group in _re.findall(r"\{cite(?::[tp])?\}`([^`]+)`", chapter.source.read_text()):
            cited |= {k.strip() for k in group.split(",")}
        assert cited, f"{chapter.name} cites nothing"
        assert cited <= keys, f"{chapter.name} cites keys missing from references.bib: {sorted(cited - keys)}"
