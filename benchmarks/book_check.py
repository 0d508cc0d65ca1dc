"""Look at the built book as a reader's browser does, offline: headless Chromium.

For each chapter page and each window width it reports how many code cells are wider than the
content column (they would scroll sideways), the column's width in monospace characters, the
longest code line, how many formulas MathJax rendered (and how many it could not), and every
resource the page tried to load and could not (with the network off, anything from outside shows
up here: "outside"). Optionally it saves a screenshot of each page.

    make book                       # or: jupyter-book build .
    python benchmarks/book_check.py                         # 1280 and 1024 px wide windows
    python benchmarks/book_check.py 04_ect --widths 1440 --screenshots /tmp/screens

Needs Chromium (Debian: ``apt-get install chromium``). The network is cut by pointing Chromium
at a proxy that does not exist (``--proxy-server=127.0.0.1:9``); file:// pages do not use it.
How it measures: a copy of each page with a small script appended is opened with
``--dump-dom``; the script waits for MathJax, opens the hidden (toggled) cells, measures, and
writes its findings as JSON into the page, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
<script>
(function () {
  function maxLine(text) {
    return Math.max.apply(null, text.split("\n").map(function (l) { return l.length; }));
  }
  function report() {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    var code = Array.prototype.slice.call(
      document.querySelectorAll(".bd-article div.cell_input pre"));
    var out = {code_cells: code.length, wide_code_cells: 0, longest_line: 0,
               longest_wide_lines: [], column_chars: null, column_px: null,
               wide_outputs: 0, wide_tables: 0, shrunk_images: 0, images: 0,
               math: document.querySelectorAll("mjx-container").length,
               math_errors: document.querySelectorAll("mjx-merror").length,
               raw_tex: 0};
    if (code.length) {
      var probe = document.createElement("span");
      probe.textContent = new Array(101).join("x");
      code[0].appendChild(probe);
      var cw = probe.getBoundingClientRect().width / 100;
      code[0].removeChild(probe);
      var cs = getComputedStyle(code[0]);
      var inner = code[0].clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      out.column_px = Math.round(code[0].getBoundingClientRect().width);
      out.column_chars = Math.floor(inner / cw);
      out.char_px = Math.round(cw * 100) / 100;
      out.font = cs.fontFamily.split(",")[0] + " " + cs.fontSize;
    }
    code.forEach(function (pre) {
      var n = maxLine(pre.textContent.replace(/\n$/, ""));
      out.longest_line = Math.max(out.longest_line, n);
      if (pre.scrollWidth > pre.clientWidth + 1) {
        out.wide_code_cells += 1;
        out.longest_wide_lines.push(n);
      }
    });
    document.querySelectorAll(".bd-article div.cell_output div.output pre").forEach(function (pre) {
      if (pre.scrollWidth > pre.clientWidth + 1) out.wide_outputs += 1;
    });
    document.querySelectorAll(".bd-article table").forEach(function (t) {
      if (t.getBoundingClientRect().width > t.parentElement.clientWidth + 1) out.wide_tables += 1;
    });
    document.querySelectorAll(".bd-article div.cell_output img").forEach(function (img) {
      out.images += 1;
      if (img.naturalWidth > img.clientWidth + 1) out.shrunk_images += 1;
    });
    // TeX left as text: "$" or "\(" outside code, i.e. MathJax did not run on it.
    var walker = document.createTreeWalker(document.querySelector(".bd-article") || document.body,
                                           NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("pre, code, script, style, mjx-container")) continue;
      if (/\\\(|\\\[|\$[^$\s][^$]*\$/.test(node.nodeValue)) out.raw_tex += 1;
    }
    var el = document.createElement("pre");
    el.id = "reprobook-check";
    el.textContent = JSON.stringify(out);
    document.body.appendChild(el);
  }
  window.addEventListener("load", function () {
    var ready = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
    ready.then(function () { setTimeout(report, 300); }, function () { setTimeout(report, 300); });
  });
})();
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("book_check: no Chromium found (Debian: apt-get install chromium)")


def browser_args(width: int, height: int) -> list[str]:
    return [
        chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",  # no network: any load from outside fails and is logged
        "--proxy-bypass-list=<-loopback>",
        f"--window-size={width},{height}",
        "--virtual-time-budget=10000",  # let MathJax typeset before measuring / the screenshot
        "--enable-logging=stderr",
        "--v=1",  # logs every request the browser makes ("NotifyBeforeURLRequest: URL")
    ]


REQUEST = re.compile(r"NotifyBeforeURLRequest: (\S+)")
# The browser's own requests (account, time and search services), not the page's.
BROWSER_OWN = re.compile(r"^https?://([a-z0-9-]+\.)*google\.com[/:]")


def outside_requests(log: str) -> list[str]:
    """The requests for anything not in the built book (file://) nor in the page (data:)."""
    urls = set(REQUEST.findall(log))
    return sorted(
        u
        for u in urls
        if not u.startswith(("file:", "data:", "blob:", "chrome", "about:"))
        and not BROWSER_OWN.match(u)
    )


def check_page(page: Path, width: int, screenshot: Path | None) -> dict:
    text = page.read_text(encoding="utf-8")
    with tempfile.NamedTemporaryFile(
        "w",
        suffix=".html",
        prefix=".check_",
        dir=page.parent,
        delete=False,
        encoding="utf-8",
    ) as f:
        f.write(text.replace("</body>", PROBE + "</body>"))
        probe_page = Path(f.name)
    try:
        run = subprocess.run(
            browser_args(width, 1000) + ["--dump-dom", probe_page.as_uri()],
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
        )
    finally:
        probe_page.unlink()
    found = re.search(
        r'<pre id="reprobook-check"[^>]*>(.*?)</pre>', run.stdout, re.DOTALL
    )
    result = (
        json.loads(html.unescape(found.group(1))) if found else {"error": "no report"}
    )
    result["outside_requests"] = outside_requests(run.stderr)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            browser_args(width, 2400) + [f"--screenshot={screenshot}", page.as_uri()],
            capture_output=True,
            check=False,
            timeout=120,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "chapters", nargs="*", help="chapter file names or parts of them (default: all)"
    )
    parser.add_argument(
        "--html", type=Path, default=ROOT / "_build" / "html", help="the built book"
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[1280, 1024])
    parser.add_argument(
        "--screenshots", type=Path, help="save a screenshot of each page here"
    )
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args(argv)

    pages = sorted((args.html / "book" / "chapters").glob("*.html"))
    pages = [p for p in pages if not p.name.startswith(".")]
    if args.chapters:
        pages = [p for p in pages if any(c in p.stem for c in args.chapters)]
    if not pages:
        sys.exit(
            f"book_check: no chapter pages under {args.html}/book/chapters (build the book first)"
        )

    results: dict[str, dict] = {}
    print(
        f"{'page':<22} {'width':>5} {'column':>10} {'code cells':>10} {'too wide':>8} "
        f"{'longest':>7} {'math':>5} {'raw TeX':>7} {'outside':>7}"
    )
    totals = {w: [0, 0] for w in args.widths}
    for page in pages:
        for width in args.widths:
            shot = (
                args.screenshots / f"{page.stem}_{width}.png"
                if args.screenshots
                else None
            )
            r = check_page(page, width, shot)
            results[f"{page.stem}@{width}"] = r
            if "error" in r:
                print(f"{page.stem:<22} {width:>5} {r['error']}")
                continue
            totals[width][0] += r["code_cells"]
            totals[width][1] += r["wide_code_cells"]
            column = f"{r['column_chars']} ch" if r["column_chars"] else "-"
            print(
                f"{page.stem:<22} {width:>5} {column:>10} {r['code_cells']:>10} "
                f"{r['wide_code_cells']:>8} {r['longest_line']:>7} {r['math']:>5} "
                f"{r['raw_tex']:>7} {len(r['outside_requests']):>7}"
            )
            for url in r["outside_requests"]:
                print(f"    loads from outside: {url}")
    for width, (cells, wide) in totals.items():
        print(f"at {width} px: {wide} of {cells} code cells wider than the column")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
