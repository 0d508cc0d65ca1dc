"""The built book as a reader without internet gets it.

Builds the HTML book once (jupyter-book, into a temporary folder, with ``--warningiserror`` so that
broken references and unknown citations fail here too; the chapters are not executed: the book
shows the executed notebooks in ``book/chapters``) and checks that

- no page loads anything from outside: no ``<script src>``, ``<link href>``, ``<img src>``,
  ``<iframe>``, ... and no CSS ``@import``/``url(...)`` pointing at ``http:``, ``https:`` or
  ``//``; the book's own CSS and JS files neither (ordinary ``<a href>`` links are fine);
- every chapter page loads the MathJax shipped in ``book/_static/mathjax``;
- the references page lists the cited works, the ten papers among them;
- the search index knows the chapters by their titles ("NN · Title"), not their file names.

About ten seconds (the build).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")
CHAPTERS = sorted(
    p.stem for p in (ROOT / "book" / "chapters").glob("[0-9][0-9]_*.ipynb")
)

OUTSIDE = re.compile(r"^\s*(https?:|//)", re.IGNORECASE)
# In CSS: @import "x" / @import url(x) / url(x).
CSS_URL = re.compile(
    r"""@import\s+(?:url\()?\s*["']?([^"')\s;]+)|url\(\s*["']?([^"')]+?)["']?\s*\)""",
    re.IGNORECASE,
)
# In JS (the book's scripts and inline ones): a URL on another host that names a script,
# stylesheet, font or data file, or any URL on a CDN or web-font host.
JS_RESOURCE = re.compile(
    r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/[^\s"'`<>()]*\.(?:m?js|css|woff2?|ttf|otf|json)\b"""
    r"""|(?:https?:)?//(?:cdn\.jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com|fonts\.googleapis\.com"""
    r"""|fonts\.gstatic\.com|ajax\.googleapis\.com|code\.jquery\.com)[^\s"'`<>()]*""",
    re.IGNORECASE,
)
# Strings in the shipped MathJax (3.2.2, tex-mml-chtml.js) that name a CDN but are never loaded
# by the book: the speech-rule engine's defaults, used only by MathJax's optional speech
# explorer (a11y/, not shipped) and, for wicked-good-xpath and the IE maps, only in Internet
# Explorer. benchmarks/book_check.py watches what Chromium actually requests (nothing).
KNOWN_UNUSED = (
    "https://cdn.jsdelivr.net/npm/speech-rule-engine@",
    "https://cdn.jsdelivr.net/npm/sre-mathmaps-ie@",
    "https://cdn.jsdelivr.net/npm/wicked-good-xpath@1.3.0/dist/wgxpath.install.js",
)
# The ten papers, as their titles appear in the bibliography (case-insensitive).
PAPERS = (
    "AcceleratedLiNGAM",
    "Scaling Laws for Data Filtering",
    "Hallucinations in Diffusion Models through Mode Interpolation",
    "Consistency Models Made Easy",
    "Adversarial Compression",
    "Distilling Quadratic Knowledge to Subquadratic Models",
    "Reason about Pairwise Differences",
    "Comparative Study of Discrete Optimizers",
    "Zero-Shot Adapter Discovery",
    "Personalized Text-to-Image Generation",
)

# Attributes through which a tag loads something (an <a href> is a link, not a load).
LOADING = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "image": ("href", "xlink:href"),  # SVG
    "use": ("href", "xlink:href"),  # SVG
}


class Page(HTMLParser):
    """What a page loads: (tag, attribute, value) triples, inline CSS and inline scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in LOADING.get(tag, ()):
            if attrs.get(name):
                for value in attrs[name].split(","):  # srcset: "url 2x, url 3x"
                    self.loads.append((tag, name, value.strip().split(" ")[0]))
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        if tag in ("style", "script") and not attrs.get("src"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.styles.append(data)
        elif self._in == "script":
            self.scripts.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def css_urls(text: str) -> list[str]:
    return [a or b for a, b in CSS_URL.findall(text)]


def js_outside(text: str) -> list[str]:
    found = [m.group(0) for m in JS_RESOURCE.finditer(text)]
    return [u for u in found if not any(u.startswith(k) for k in KNOWN_UNUSED)]


def local_file(base: Path, ref: str) -> Path | None:
    """The file a relative reference in ``base`` (a page or a stylesheet) points to."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (base.parent / unquote(parts.path)).resolve()


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    if not JUPYTER_BOOK.exists() and not shutil.which("jupyter-book"):
        pytest.skip("jupyter-book is not installed")
    exe = str(JUPYTER_BOOK) if JUPYTER_BOOK.exists() else shutil.which("jupyter-book")
    out = tmp_path_factory.mktemp("book")
    run = subprocess.run(
        [
            exe,
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "--warningiserror",
            "--keep-going",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=900,
    )
    log = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)
    warnings = [
        line for line in log.splitlines() if "WARNING" in line or "ERROR" in line
    ]
    assert run.returncode == 0, "the book does not build cleanly:\n" + "\n".join(
        warnings or log.splitlines()[-30:]
    )
    return out / "_build" / "html"


def pages(html: Path) -> list[Path]:
    return sorted(html.rglob("*.html"))


def test_no_page_loads_anything_from_outside(html):
    problems = []
    assets: set[Path] = set()
    for path in pages(html):
        page = parse(path)
        name = path.relative_to(html)
        for tag, attr, value in page.loads:
            if OUTSIDE.match(value):
                problems.append(f"{name}: <{tag} {attr}={value!r}>")
            elif tag in ("script", "link"):
                target = local_file(path, value)
                if target is not None and target.suffix in (".css", ".js"):
                    assets.add(target)
        for css in page.styles:
            problems += [
                f"{name}: inline CSS url({u})"
                for u in css_urls(css)
                if OUTSIDE.match(u)
            ]
        for script in page.scripts:
            problems += [f"{name}: inline script names {u}" for u in js_outside(script)]
    assert assets, "no local CSS/JS found: is this the built book?"
    # The stylesheets and scripts the pages load (and the stylesheets those import).
    seen: set[Path] = set()
    while assets:
        asset = assets.pop()
        if asset in seen:
            continue
        seen.add(asset)
        assert asset.is_file(), (
            f"a page loads {asset.relative_to(html)}, which the build lacks"
        )
        text = asset.read_text(encoding="utf-8", errors="replace")
        name = asset.relative_to(html)
        if asset.suffix == ".css":
            for url in css_urls(text):
                if OUTSIDE.match(url):
                    problems.append(f"{name}: url({url})")
                elif url.endswith(".css") and (target := local_file(asset, url)):
                    assets.add(target)
        else:
            problems += [f"{name}: names {u}" for u in js_outside(text)]
    assert not problems, "the book loads from outside:\n" + "\n".join(
        sorted(set(problems))
    )


def test_every_chapter_page_loads_the_shipped_mathjax(html):
    assert CHAPTERS, "no chapters found"
    mathjax = html / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file()
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")), (
        "MathJax fonts"
    )
    for chapter in CHAPTERS:
        page = html / "book" / "chapters" / f"{chapter}.html"
        scripts = [v for tag, attr, v in parse(page).loads if tag == "script"]
        local = [
            s
            for s in scripts
            if urlsplit(s).path.endswith("_static/mathjax/tex-mml-chtml.js")
        ]
        assert local, f"{chapter}: no local MathJax among {scripts}"
        assert local_file(page, local[0]) == (mathjax / "tex-mml-chtml.js").resolve()


def test_the_references_page_lists_the_cited_works(html):
    page = (html / "book" / "references.html").read_text(encoding="utf-8")
    entries = re.findall(r'<div class="citation"[^>]*role="doc-biblioentry"', page)
    assert len(entries) >= len(PAPERS), f"{len(entries)} entries on the references page"
    text = re.sub(r"<[^>]+>", "", page).lower()
    missing = [title for title in PAPERS if title.lower() not in text]
    assert not missing, f"papers missing from the references: {missing}"
    # The intro cites each paper and its citations link to the references page.
    intro = (html / "book" / "intro.html").read_text(encoding="utf-8")
    assert len(re.findall(r'href="references\.html#id\d+"', intro)) >= len(PAPERS)


def test_search_knows_the_chapters_by_their_titles(html):
    text = (html / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1 : text.rindex(")")])
    titles = dict(zip(index["docnames"], index["titles"]))
    for chapter in CHAPTERS:
        title = titles[f"book/chapters/{chapter}"]
        number = chapter.split("_", 1)[0]
        assert title.startswith(f"{number} · "), f"{chapter}: search shows {title!r}"
        assert chapter not in title and ".ipynb" not in title, (
            f"{chapter}: search shows {title!r}"
        )
