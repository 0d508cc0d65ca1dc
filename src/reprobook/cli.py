"""The ``reprobook`` command.

    reprobook list
    reprobook run SLUG [--preset P] [-p KEY VALUE]... [--output DIR]
    reprobook execute [SLUG ...] [--force]      (the book's notebooks, stale ones only)
    reprobook scoreboard                         (writes book/scoreboard.md)

Bad input (unknown chapter, preset or parameter, a value of the wrong type)
exits with status 2 and a message naming the valid choices, before any work.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .chapters import CHAPTERS, GLOBAL_PARAMS, check_parameters, execute, get_chapter, is_stale
from .claims import read_claims, scoreboard_markdown
from .common import REPO_ROOT
from .presets import ConfigError, describe_fields, parse_cli_value


def _cmd_list(args) -> int:
    for chapter in CHAPTERS.values():
        print(f"{chapter.name}  {chapter.title}")
        print(f"  presets: {', '.join(chapter.presets)}")
        print("  parameters (cpu default):")
        for name, tp, default in describe_fields(chapter.config_cls):
            print(f"    {name}: {tp} = {default!r}")
        for name, tp in GLOBAL_PARAMS.items():
            print(f"    {name}: {tp.__name__}  (chapter-level)")
    return 0


def _cmd_run(args) -> int:
    chapter = get_chapter(args.slug)
    params = {}
    for key, value in args.param or []:
        if key in params:
            raise ConfigError(f"parameter {key!r} given twice")
        params[key] = parse_cli_value(value)
    parameters = check_parameters(chapter, args.preset, params)
    parameters.setdefault("preset", args.preset)
    out_dir = Path(args.output)
    notebook = out_dir / f"{chapter.name}.ipynb"
    claims = out_dir / "claims.json"
    print(f"running {chapter.name} at preset {args.preset!r} -> {notebook}", file=sys.stderr)
    start = time.perf_counter()
    execute(chapter, notebook, parameters, claims)
    print(f"done in {time.perf_counter() - start:.0f} s: {notebook}, {claims}", file=sys.stderr)
    return 0


def _cmd_execute(args) -> int:
    chapters = [get_chapter(s) for s in args.slugs] if args.slugs else list(CHAPTERS.values())
    for chapter in chapters:
        if not args.force and not is_stale(chapter):
            print(f"{chapter.name}: up to date", file=sys.stderr)
            continue
        print(f"{chapter.name}: executing (cpu preset)", file=sys.stderr)
        start = time.perf_counter()
        execute(chapter, chapter.book_notebook, {}, chapter.book_claims, book=True)
        print(f"{chapter.name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return _cmd_scoreboard(args)


def _cmd_scoreboard(args) -> int:
    by_chapter = {}
    for chapter in CHAPTERS.values():
        records = []
        if chapter.book_claims.exists():
            records += read_claims(chapter.book_claims)
        for extra in sorted((REPO_ROOT / "results" / chapter.slug).glob("*claims.json")):
            records += read_claims(extra)
        if records:
            by_chapter[chapter.slug] = (f"{chapter.number:02d} {chapter.title}", records)
    path = REPO_ROOT / "book" / "scoreboard.md"
    path.write_text(scoreboard_markdown(by_chapter) + "\n")
    print(f"wrote {path.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprobook", description="Run the chapters of the executable research book.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="chapters, their presets and parameters").set_defaults(func=_cmd_list)
    run = sub.add_parser("run", help="execute one chapter at a preset, with parameter overrides")
    run.add_argument("slug", help=f"chapter: one of {', '.join(CHAPTERS)}")
    run.add_argument("--preset", default="cpu", help="preset name (see `reprobook list`); default cpu")
    run.add_argument(
        "-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
        help="override a parameter; VALUE is JSON when it parses (3, 0.5, true, [1,2]) else a string",
    )
    run.add_argument("--output", default="runs", help="folder for NN_slug.ipynb and claims.json (default: runs)")
    run.set_defaults(func=_cmd_run)
    ex = sub.add_parser("execute", help="execute the book's chapters whose notebooks are stale")
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
        print(f"reprobook: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
