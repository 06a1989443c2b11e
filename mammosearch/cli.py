"""The ``mammosearch`` command line (typer). Each command is a thin wrapper over the library.

Exit codes: 0 ok, 1 user error (a clear message on stderr), 2 integrity failure. Logs and
progress go to stderr; results go to files or stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mammosearch import __version__
from mammosearch.config import Settings, load_settings
from mammosearch.errors import IndexIntegrityError, MammosearchError

__all__ = ["app", "main"]

logger = logging.getLogger("mammosearch.cli")

app = typer.Typer(
    name="mammosearch",
    help="Mammography report normalization (ACR BI-RADS), similar-case search and density.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_err = Console(stderr=True)

T = TypeVar("T")


@dataclass(slots=True)
class _State:
    config: Path | None = None

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.config, **overrides)


def _configure_logging(verbose: int, quiet: bool) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = RichHandler(console=_err, show_path=False, rich_tracebacks=False)
    root = logging.getLogger("mammosearch")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mammosearch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Settings file (TOML or JSON), read before the flags."),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Mammography report normalization, similar-case search and density assessment."""
    _configure_logging(verbose, quiet)
    ctx.obj = _State(config=config)


def _run(fn: Callable[[], T]) -> T:
    """Run a command body, mapping library errors to exit codes with a clear message."""
    try:
        return fn()
    except IndexIntegrityError as e:
        _err.print(f"[bold red]integrity error[/] {e}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except MammosearchError as e:
        _err.print(f"[bold red]error[/] {e}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err.print("interrupted")
        raise typer.Exit(130) from None


@app.command()
def normalize(
    ctx: typer.Context,
    input: Annotated[
        Path | None,
        typer.Argument(
            help="A .txt report, a folder of .txt reports, a .csv or a .jsonl of reports.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="JSON Lines file to write.")
    ] = Path("normalized.jsonl"),
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes (default: settings).")
    ] = None,
    id_column: Annotated[str, typer.Option(help="CSV column / JSONL key of the report id.")] = "id",
    text_column: Annotated[
        str, typer.Option(help="CSV column / JSONL key of the report text.")
    ] = "text",
    sample: Annotated[
        bool,
        typer.Option("--sample", help="Normalize the bundled sample reports instead of INPUT."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Normalize free-text reports into BI-RADS terms (one JSON object per report)."""
    from mammosearch.pipeline import normalize_reports, sample_reports_dir

    state: _State = ctx.obj

    def body() -> None:
        if sample and input is not None:
            raise _usage("give INPUT or --sample, not both")
        source = sample_reports_dir() if sample else input
        if source is None:
            raise _usage("give INPUT (a report file, folder, .csv or .jsonl) or --sample")
        settings = state.settings(workers=workers)
        summary = normalize_reports(
            source,
            output,
            settings=settings,
            workers=workers,
            id_column=id_column,
            text_column=text_column,
            progress=progress and sys.stderr.isatty(),
        )
        _err.print(
            f"normalized {summary.total} reports in {summary.seconds:.1f} s "
            f"({summary.rate:.0f}/s): {summary.ok} ok, {summary.failed} failed; "
            f"density found in {summary.with_density}, BI-RADS in {summary.with_birads}; "
            f"languages {dict(summary.languages)} → {output}",
            highlight=False,
        )
        if summary.errors:
            reasons = ", ".join(f"{code} × {n}" for code, n in summary.errors.most_common())
            _err.print(f"failures by code: {reasons}", highlight=False)

    _run(body)


evaluate_app = typer.Typer(
    help="Measure each path against labelled data.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("reports")
def evaluate_reports_command(
    ctx: typer.Context,
    gold: Annotated[Path, typer.Argument(help="Gold JSON Lines (id, density, birads, findings).")],
    texts: Annotated[Path, typer.Argument(help="Folder with one <id>.txt per gold row.")],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    show_misses: Annotated[
        int, typer.Option("--misses", min=0, help="List up to N reports with errors.")
    ] = 10,
) -> None:
    """Density and BI-RADS accuracy and findings F1 of the normalizer on gold reports."""
    from mammosearch.pipeline import evaluate_reports

    state: _State = ctx.obj

    def body() -> None:
        scores = evaluate_reports(gold, texts, settings=state.settings(workers=workers))
        data = scores.to_dict()
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False))
            return
        typer.echo(f"reports                {data['reports']}")
        typer.echo(f"density accuracy       {data['density_accuracy']:.4f}")
        typer.echo(f"BI-RADS accuracy       {data['birads_accuracy']:.4f}")
        if "findings" in data:
            f = data["findings"]
            typer.echo(
                f"findings F1            {f['f1']:.4f}  (precision {f['precision']:.4f}, "
                f"recall {f['recall']:.4f}; type, laterality, negated)"
            )
        if "descriptors" in data:
            d = data["descriptors"]
            typer.echo(
                f"descriptors F1         {d['f1']:.4f}  (precision {d['precision']:.4f}, "
                f"recall {d['recall']:.4f})"
            )
        if "recommendation_accuracy" in data:
            typer.echo(f"recommendation acc.    {data['recommendation_accuracy']:.4f}")
        for line in scores.misses[:show_misses]:
            typer.echo(f"  miss {line}")

    _run(body)


def _usage(message: str) -> MammosearchError:
    from mammosearch.errors import InputError

    return InputError(message, fix="see 'mammosearch normalize --help'")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
