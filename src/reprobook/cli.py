"""The ``reprobook`` command.

    reprobook list
    reprobook run SLUG [--preset P] [-p KEY VALUE]... [--output DIR] [--save-results]
    reprobook execute [SLUG ...] [--force]      (the book's notebooks, stale ones only)
    reprobook scoreboard                         (writes book/scoreboard.md)

A chapter is named by its slug (``lingam``) or its file name (``01_lingam``).
Bad input (unknown chapter, preset or parameter, a value of the wrong type,
``device=cuda`` without a GPU, a paper-scale preset on a CPU-only machine, an
output folder that cannot be written, not being in a checkout of the book)
exits with status 2 and a one-line message naming the valid choices, before
any work. A chapter that fails while running exits with status 1 and one line
naming the cell; its notebook holds the traceback.

``execute`` and ``scoreboard`` work on the checkout holding the working
directory (see :data:`reprobook.common.REPO_ROOT`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

from .chapters import (
    CHAPTERS,
    CPU_PRESETS,
    DEFAULT_DEVICE,
    DEFAULT_SEED,
    PRESET_PURPOSE,
    check_device,
    check_parameters,
    execute,
    get_chapter,
    is_stale,
    require_checkout,
)
from .claims import read_claims, scoreboard_markdown
from .common import DEVICES, REPO_ROOT
from .presets import ConfigError, describe_fields, parse_cli_value

WIDTH = 100


def _wrap(text: str, indent: str, hang: str | None = None) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=hang or indent,
                         break_on_hyphens=False, break_long_words=False)


def _value(v) -> str:
    return repr(list(v)).replace("'", '"') if isinstance(v, tuple) else repr(v).replace("'", '"')


def _cmd_list(args) -> int:
    chapters = [get_chapter(s) for s in args.slugs] if args.slugs else list(CHAPTERS.values())
    for chapter in chapters:
        print(f"{chapter.slug}  ({chapter.name})  {chapter.title}")
        print(f"  reprobook run {chapter.slug} [--preset {'|'.join(chapter.presets)}] [-p KEY VALUE]...")
        print(f"  seed = {DEFAULT_SEED}, device = {DEFAULT_DEVICE} ({' | '.join(DEVICES)}; "
              f"the GPU path runs on {chapter.gpu_backend})")
        print("  presets:")
        width = max(map(len, chapter.presets))
        for preset in chapter.presets:
            purpose = PRESET_PURPOSE.get(preset, "CPU" if preset in CPU_PRESETS else "for a GPU")
            head = f"    {preset:<{width}}  "
            if preset == "cpu":
                print(_wrap(f"{purpose}; the parameters below", head, " " * len(head)))
                continue
            changes = ", ".join(f"{k}={_value(v)}" for k, v in chapter.preset_changes(preset).items())
            print(_wrap(f"{purpose}; changes {changes or 'nothing'}", head, " " * len(head)))
        print("  parameters (-p KEY VALUE; VALUE as JSON: 3, 0.5, true, [1, 2], or a string):")
        for name, tp, default in describe_fields(chapter.config_cls):
            print(f"    {name}: {tp} = {_value(default)}")
        print()
    return 0


def _prepare_output(text: str) -> Path:
    """The run's output folder, created and checked writable; a ConfigError otherwise."""
    out = Path(text).expanduser().resolve()
    for protected in ("results", "book", "chapters", "src"):
        folder = (REPO_ROOT / protected).resolve()
        if out == folder or folder in out.parents:
            raise ConfigError(
                f"--output {text} is inside the repository's {protected}/: a run writes only to its own "
                "folder (e.g. runs/NAME); --save-results copies its results into results/<slug>/"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".reprobook-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to --output {text}: {err.strerror or err}") from None
    return out


def _save_results(chapter, run_results: Path) -> None:
    """Copy the run's result files into the repository's results/<slug>/ (--save-results)."""
    files = sorted(p for p in run_results.rglob("*") if p.is_file()) if run_results.is_dir() else []
    if not files:
        print(f"--save-results: this run saved no results (only the presets beyond cpu do); "
              f"nothing copied to results/{chapter.slug}/", file=sys.stderr)
        return
    target = REPO_ROOT / "results" / chapter.slug
    for f in files:
        dest = target / f.relative_to(run_results)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
        print(f"saved {dest.relative_to(REPO_ROOT)}", file=sys.stderr)
    print(f"the book's chapter {chapter.name} is now stale: `reprobook execute {chapter.slug}` "
          "re-executes it (`make book` does it too)", file=sys.stderr)


def _cmd_run(args) -> int:
    chapter = get_chapter(args.slug)
    params = {}
    for key, value in args.param or []:
        if key in params:
            raise ConfigError(f"parameter {key!r} given twice")
        params[key] = parse_cli_value(value)
    parameters = check_parameters(chapter, args.preset, params)
    require_checkout()
    if not chapter.source.is_file():
        raise ConfigError(f"the chapter's source {chapter.source.relative_to(REPO_ROOT)} is missing")
    check_device(chapter, args.preset, parameters.get("device", DEFAULT_DEVICE))
    out_dir = _prepare_output(args.output)
    parameters.setdefault("preset", args.preset)
    notebook = out_dir / f"{chapter.name}.ipynb"
    claims = out_dir / "claims.json"
    run_results = out_dir / "results"
    shown = Path(os.path.relpath(out_dir)) if not os.path.relpath(out_dir).startswith("..") else out_dir
    print(f"running {chapter.name} at preset {args.preset!r} -> {shown}/", file=sys.stderr)
    start = time.perf_counter()
    if not _execute(chapter, shown / notebook.name, notebook, parameters, claims,
                    results_dir=run_results, show_progress=True):
        return 1
    print(f"done in {time.perf_counter() - start:.0f} s: {shown / notebook.name}, {shown / claims.name}"
          + (f", {shown / 'results'}/" if run_results.is_dir() else ""), file=sys.stderr)
    if args.save_results:
        _save_results(chapter, run_results / chapter.slug)
    return 0


def _execute(chapter, shown: Path, *args, **kwargs) -> bool:
    """:func:`reprobook.chapters.execute`; False, after one line naming the cell and the error,
    when the chapter fails (the executed notebook ``shown`` holds the traceback)."""
    from papermill.exceptions import PapermillExecutionError

    try:
        execute(chapter, *args, **kwargs)
    except PapermillExecutionError as err:
        evalue = re.sub(r"\x1b\[[0-9;]*m", "", str(err.evalue)).strip().splitlines()
        print(f"reprobook: {chapter.slug} failed in cell [{err.exec_count}]: {err.ename}: "
              f"{evalue[0] if evalue else ''} (traceback in {shown})", file=sys.stderr)
        return False
    return True


def _cmd_execute(args) -> int:
    chapters = [get_chapter(s) for s in args.slugs] if args.slugs else list(CHAPTERS.values())
    require_checkout()
    for chapter in chapters:
        if not args.force and not is_stale(chapter):
            print(f"{chapter.name}: up to date", file=sys.stderr)
            continue
        print(f"{chapter.name}: executing (cpu preset)", file=sys.stderr)
        start = time.perf_counter()
        if not _execute(chapter, chapter.book_notebook.relative_to(REPO_ROOT), chapter.book_notebook, {},
                        chapter.book_claims, book=True):
            return 1
        print(f"{chapter.name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return _cmd_scoreboard(args)


def _cmd_scoreboard(args) -> int:
    require_checkout()
    by_chapter = {}
    for chapter in CHAPTERS.values():
        records = []
        files = [chapter.book_claims] if chapter.book_claims.exists() else []
        files += sorted((REPO_ROOT / "results" / chapter.slug).glob("*claims.json"))
        for f in files:
            try:
                records += read_claims(f)
            except ValueError as err:  # JSONDecodeError is one
                raise ConfigError(f"{f.relative_to(REPO_ROOT)}: not a readable claims file ({err})") from None
        if records:
            by_chapter[chapter.slug] = (f"{chapter.number:02d} · {chapter.title}", records,
                                        f"chapters/{chapter.name}.ipynb")
    path = REPO_ROOT / "book" / "scoreboard.md"
    path.write_text(scoreboard_markdown(by_chapter) + "\n")
    print(f"wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (exit 2) like every other error of the command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reprobook", description="Run the chapters of the executable research book.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ls = sub.add_parser("list", help="chapters: the name `run` takes, title, presets, parameters, defaults")
    ls.add_argument("slugs", nargs="*", help="chapters to show (default: all)")
    ls.set_defaults(func=_cmd_list)
    run = sub.add_parser(
        "run", help="execute one chapter at a preset, with parameter overrides",
        description="Execute one chapter with papermill into --output: the notebook NN_slug.ipynb, "
                    "claims.json and, for presets that save results, results/<slug>/. Nothing is "
                    "written outside --output unless --save-results is given.",
    )
    run.add_argument("slug", help=f"chapter: one of {', '.join(CHAPTERS)} (or 01_lingam, ...)")
    run.add_argument("--preset", default="cpu",
                     help="preset (see `reprobook list`): cpu (default, a laptop), long (a longer CPU run, "
                          "where a chapter has it), full (paper scale, for a GPU)")
    run.add_argument(
        "-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
        help="set a parameter (a config field, seed or device); VALUE is JSON when it parses "
             "(3, 0.5, true, [1,2]) else a string",
    )
    run.add_argument("--output", default="runs", help="folder for everything the run writes (default: runs)")
    run.add_argument("--save-results", action="store_true",
                     help="after the run, copy its saved results (OUTPUT/results/<slug>/) into the repository's "
                          "results/<slug>/, where the book's chapter shows them; this makes the book's "
                          "chapter stale (re-execute it with `reprobook execute SLUG`)")
    run.set_defaults(func=_cmd_run)
    ex = sub.add_parser("execute", help="execute the book's chapters whose notebooks are stale (cpu preset)")
    ex.add_argument("slugs", nargs="*", help="chapters (default: all)")
    ex.add_argument("--force", action="store_true", help="execute even when up to date")
    ex.set_defaults(func=_cmd_execute)
    sub.add_parser("scoreboard", help="write book/scoreboard.md from the chapters' claims").set_defaults(
        func=_cmd_scoreboard
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"reprobook: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reprobook: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `reprobook list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
