"""The ``mammosearch`` command line (typer). Each command is a thin wrapper over the library.

Exit codes (DESIGN.md): 0 ok, 1 user error (a clear message on stderr: what was wrong and the
fix), 2 usage error (Click's convention: a bad option, value or combination, with the command's
usage), 3 integrity failure. Logs and progress go to stderr; results go to files or stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console

from mammosearch import __version__
from mammosearch.config import Settings, load_settings
from mammosearch.errors import IndexIntegrityError, MammosearchError

__all__ = ["EXIT_INTEGRITY", "EXIT_USAGE", "EXIT_USER", "app", "main"]

logger = logging.getLogger("mammosearch.cli")

app = typer.Typer(
    name="mammosearch",
    help="Mammography report normalization (ACR BI-RADS), similar-case search and density.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_err = Console(stderr=True, soft_wrap=True)  # messages whole, never wrapped mid-word

T = TypeVar("T")

EXIT_USER, EXIT_USAGE, EXIT_INTEGRITY = 1, 2, 3

# the fixed sets of options (a test holds them equal to the library's)
Engine = Literal["local", "ray"]
EmbedderName = Literal["auto", "biomedclip.v1", "radiomics.v1", "convnext.v1"]
Fusion = Literal["weighted", "rrf"]
Method = Literal["auto", "vote", "convnext", "probe"]


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
        typer.Option(
            "--config", help="Settings file (TOML or JSON), read before the flags.", metavar="PATH"
        ),
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
        raise typer.Exit(EXIT_INTEGRITY) from None
    except MammosearchError as e:
        _err.print(f"[bold red]error[/] {e}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USER) from None
    except KeyboardInterrupt:
        _err.print("interrupted")
        raise typer.Exit(130) from None


_WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Worker processes (default: settings).",
                 metavar="INTEGER"),
]  # fmt: skip
_EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="local (this machine's processes) or ray (a Ray cluster; resumable Parquet shards; "
        "needs the 'distributed' extra).",
    ),
]
_RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With --engine ray: 'auto' (the cluster started here by 'ray start --head') or "
        "HOST:PORT; default: a private local cluster.",
        metavar="TEXT",
    ),
]
_WorkDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--work-dir",
        help="With --engine ray: the folder of the job's Parquet shards (default: OUTPUT.parts "
        "beside the output; kept when interrupted, so the same command resumes).",
        metavar="PATH",
    ),
]


def _ray_options(
    ctx: typer.Context, engine: str, address: str | None, work_dir: Path | None
) -> Any:
    """The Ray engine's options, or ``None`` for the local engine (a Ray flag without it is an
    error)."""
    from mammosearch.pipeline import RayOptions, check_engine

    check_engine(engine)
    if engine != "ray":
        if address is not None or work_dir is not None:
            raise _usage(ctx, "--ray-address and --work-dir need --engine ray")
        return None
    return RayOptions(address=address, work_dir=work_dir)


def _print_shards(counts: dict[str, int]) -> None:
    """A Ray job's shard counts (nothing for the local engine)."""
    if counts:
        _err.print(
            f"ray: {counts['total']} shards, {counts['computed']} computed, "
            f"{counts['reused']} reused",
            highlight=False,
        )


@app.command()
def normalize(
    ctx: typer.Context,
    input: Annotated[
        Path | None,
        typer.Argument(
            help="A .txt report, a folder of .txt reports, a .csv, .jsonl or .parquet of reports.",
            show_default=False,
            metavar="INPUT",
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="JSON Lines file to write; OUT.parquet or OUT.csv writes tables (reports, and "
            "findings in OUT.findings.parquet or .csv).",
            metavar="PATH",
        ),
    ] = Path("normalized.jsonl"),
    workers: _WorkersOpt = None,
    id_column: Annotated[
        str, typer.Option(help="CSV column / JSONL key of the report id.", metavar="TEXT")
    ] = "id",
    text_column: Annotated[
        str, typer.Option(help="CSV column / JSONL key of the report text.", metavar="TEXT")
    ] = "text",
    sample: Annotated[
        bool,
        typer.Option("--sample", help="Normalize the bundled sample reports instead of INPUT."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    scrub: Annotated[
        bool,
        typer.Option("--scrub", help="Scrub PHI first; records carry the scrubbed text."),
    ] = False,
    engine: _EngineOpt = "local",
    ray_address: _RayAddressOpt = None,
    work_dir: _WorkDirOpt = None,
) -> None:
    """Normalize free-text reports into BI-RADS terms.

    One JSON object per report (JSON Lines), or flat tables (Parquet or CSV, by the output's
    extension); a report that cannot be read is written with its error and counted, never
    dropped.
    """
    from mammosearch.pipeline import normalize_reports, sample_reports_dir

    state: _State = ctx.obj

    def body() -> None:
        if sample and input is not None:
            raise _usage(ctx, "give INPUT or --sample, not both")
        source = sample_reports_dir() if sample else input
        if source is None:
            raise _usage(
                ctx, "give INPUT (a report file, folder, .csv, .jsonl or .parquet) or --sample"
            )
        settings = state.settings(workers=workers)
        ray = _ray_options(ctx, engine, ray_address, work_dir)
        summary = normalize_reports(
            source,
            output,
            settings=settings,
            workers=workers,
            id_column=id_column,
            text_column=text_column,
            progress=progress and sys.stderr.isatty(),
            scrub=scrub,
            engine=engine,
            ray=ray,
        )
        _err.print(
            f"normalized {summary.total} reports in {summary.seconds:.1f} s "
            f"({summary.rate:.0f}/s): {summary.ok} ok, {summary.failed} failed; "
            f"density found in {summary.with_density}, BI-RADS in {summary.with_birads}; "
            f"languages {dict(summary.languages)} → {output}",
            highlight=False,
        )
        _print_shards(summary.shards)
        if summary.errors:
            reasons = ", ".join(f"{code} × {n}" for code, n in summary.errors.most_common())
            _err.print(f"failures by code: {reasons}", highlight=False)

    _run(body)


export_app = typer.Typer(
    help="Export normalized reports to other systems' formats.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(export_app, name="export")


@export_app.command("fhir")
def export_fhir_command(
    ctx: typer.Context,
    normalized: Annotated[
        Path,
        typer.Argument(help="JSON Lines written by normalize.", metavar="NORMALIZED"),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="NDJSON file: one FHIR R4 Bundle per report.", metavar="PATH"
        ),
    ],
    subject: Annotated[
        str,
        typer.Option(
            "--subject",
            help="The patient reference of every Bundle, e.g. Patient/123 (never taken from "
            "report text).",
            metavar="REFERENCE",
        ),
    ],
    encounter: Annotated[
        str | None,
        typer.Option(help="An encounter reference, e.g. Encounter/456.", metavar="REFERENCE"),
    ] = None,
) -> None:
    """Normalized reports as FHIR R4 Bundles (DiagnosticReport and Observations), one per line.

    Each resource is validated by fhir.resources (the 'fhir' extra); codes from SNOMED CT where
    one is known, local codes otherwise (docs/CLI.md).
    """
    from mammosearch.pipeline import export_fhir

    def body() -> None:
        count = export_fhir(normalized, output, subject=subject, encounter=encounter)
        _err.print(f"exported {count} reports as FHIR R4 Bundles → {output}", highlight=False)

    _run(body)


index_app = typer.Typer(
    help="Build, check and change case indexes.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(index_app, name="index")

_EMBEDDER_HELP = (
    "auto (BiomedCLIP when its weights load, else radiomics.v1), biomedclip.v1, radiomics.v1, "
    "convnext.v1 (--model: a train-density directory)"
)


@index_app.command("build")
def index_build(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(help="CSV, JSONL or Parquet manifest (DESIGN.md).", metavar="MANIFEST")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Index directory.", metavar="PATH")
    ],
    embedder: Annotated[EmbedderName, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[
        str | None,
        typer.Option(help="Model source: hf-hub:ORG/NAME or local-dir:PATH.", metavar="TEXT"),
    ] = None,
    update: Annotated[bool, typer.Option("--update", help="Add only what is new.")] = False,
    density_model: Annotated[
        Path | None,
        typer.Option(help="Copy this trained density model into the index.", metavar="PATH"),
    ] = None,
    label_order: Annotated[
        str | None,
        typer.Option(help="Label order, comma-separated (unknown label sets).", metavar="TEXT"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    keep_report_text: Annotated[
        bool,
        typer.Option(
            "--keep-report-text",
            help="Store report text as written (default: scrubbed of PHI; the manifest says).",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Go on from where an interrupted build with the same "
            "manifest and options stopped (rows already read are not read again).",
        ),  # fmt: skip
    ] = False,
    allow_secondary_capture: Annotated[
        bool,
        typer.Option(help="Index secondary captures (digitised film archived as WSD/SYN)."),
    ] = False,
    keep_first: Annotated[
        bool,
        typer.Option(
            "--keep-first",
            help="Index an image repeated in the manifest (same case_id and image) once, "
            "leaving out the repeats (default: repeats are an error).",
        ),
    ] = False,
    keep_source_paths: Annotated[
        bool,
        typer.Option(
            "--keep-source-paths",
            help="Store the source image paths (default: not stored; file names can hold PHI).",
        ),
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            help="Keep a new index's case store in PostgreSQL: postgresql://USER@HOST:PORT/DB "
            "(password from PGPASSWORD or ~/.pgpass). Default: SQLite in the index directory.",
            metavar="TEXT",
        ),
    ] = None,
    engine: _EngineOpt = "local",
    workers: _WorkersOpt = None,
    ray_address: _RayAddressOpt = None,
    work_dir: _WorkDirOpt = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="Split the vector indexes into N shard files, searched together "
            "(default: 1, or the existing index's count with --update). docs/SCALING.md.",
            metavar="INTEGER",
        ),
    ] = None,
) -> None:
    """Build (or --update) a case index from a manifest.

    Images, scrubbed reports, vectors, thumbnails and a checksummed manifest. A bad image is
    skipped and counted; a bad report is dropped and counted, its image still indexed.
    """
    from mammosearch.pipeline import BuildOptions, build_index

    state: _State = ctx.obj

    def body() -> None:
        order = [x.strip() for x in label_order.split(",")] if label_order else None
        settings = state.settings(store=store, workers=workers)
        ray = _ray_options(ctx, engine, ray_address, work_dir)
        options = BuildOptions(
            embedder=embedder, model=model, update=update, label_order=order,
            progress=progress and sys.stderr.isatty(), density_model=density_model,
            keep_report_text=keep_report_text, keep_source_paths=keep_source_paths,
            resume=resume, allow_secondary_capture=allow_secondary_capture, keep_first=keep_first,
            store=settings.store, engine=engine, ray=ray, shards=shards,
        )  # fmt: skip
        report = build_index(manifest, output, settings=settings, options=options)
        _print_shards(report.shards)
        _err.print(
            f"{report.embedder}: indexed {report.indexed} of {report.rows} rows "
            f"({report.already_indexed} already there, {report.skipped} skipped"
            + (f": {dict(report.reasons)}" if report.reasons else "")
            + f"); reports {report.with_report}; vote {report.vote_figures} → {output}",
            highlight=False,
        )
        if report.reports_dropped:
            _err.print(
                f"{report.reports_dropped} reports dropped, their images indexed without them "
                f"({dict(report.report_reasons)}; rows in build_report.json)",
                highlight=False,
            )

    _run(body)


@index_app.command("verify")
def index_verify(
    directory: Annotated[Path, typer.Argument(help="Index directory.", metavar="DIRECTORY")],
) -> None:
    """Check an index's checksums and id alignment (exit 3 if not)."""
    from mammosearch.pipeline import verify_index

    def body() -> None:
        manifest = verify_index(directory)
        typer.echo(
            f"ok: {manifest.counts['images']} images, {len(manifest.files)} files verified, "
            f"embedder {manifest.embedder.name}"
        )

    _run(body)


@index_app.command("migrate")
def index_migrate(
    directory: Annotated[Path, typer.Argument(help="Index directory.", metavar="DIRECTORY")],
) -> None:
    """Upgrade an index's case store to this version's schema."""
    from mammosearch.pipeline import migrate_index

    def body() -> None:
        typer.echo(f"case store at schema revision {migrate_index(directory)}")

    _run(body)


@index_app.command("remove")
def index_remove(
    directory: Annotated[Path, typer.Argument(help="Index directory.", metavar="DIRECTORY")],
    case: Annotated[
        list[str], typer.Option("--case", help="Case id to remove (repeatable).", metavar="TEXT")
    ],
) -> None:
    """Remove cases from an index."""
    from mammosearch.pipeline import remove_cases

    def body() -> None:
        removed = remove_cases(directory, case)
        typer.echo(f"removed {removed} images of {len(case)} cases")

    _run(body)


def _laterality_option(value: str | None) -> str | None:
    """Check ``--laterality`` (a usage error, exit 2, before any work)."""
    from mammosearch.pipeline import Laterality

    try:
        side = Laterality.parse(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if side is Laterality.BILATERAL:
        raise typer.BadParameter("an image is of one side: use L or R")
    return value


def _view_option(value: str | None) -> str | None:
    """Check ``--view`` (a usage error, exit 2, before any work)."""
    from mammosearch.pipeline import View

    try:
        View.parse(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return value


def _neighbours_table(neighbours: list[Any]) -> None:
    from rich.table import Table

    table = Table("rank", "case", "score", "label", "side", "view", "image", "text")
    for rank, n in enumerate(neighbours, start=1):
        table.add_row(
            str(rank), n.case_id, f"{n.score:.3f}", n.label or "-",
            n.laterality.code if n.laterality else "-",
            n.view or "-", f"{n.scores.get('image', float('nan')):.3f}",
            f"{n.scores.get('text', float('nan')):.3f}",
        )  # fmt: skip
    Console().print(table)


@app.command()
def search(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Index directory.", metavar="DIRECTORY")],
    image: Annotated[
        Path | None, typer.Option(help="Query image (DICOM, PNG, JPEG).", metavar="PATH")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Query report text.", metavar="TEXT")] = None,
    k: Annotated[
        int, typer.Option("-k", min=1, max=1000, help="Neighbours.", metavar="INTEGER")
    ] = 10,
    laterality: Annotated[
        str | None, typer.Option(help="Only L or R.", callback=_laterality_option, metavar="TEXT")
    ] = None,
    view: Annotated[
        str | None,
        typer.Option(help="Only this view (CC, MLO…).", callback=_view_option, metavar="TEXT"),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Only this density label.", metavar="TEXT")
    ] = None,
    exclude_patient: Annotated[
        str | None, typer.Option(help="Leave out this patient.", metavar="TEXT")
    ] = None,
    per_case: Annotated[
        bool, typer.Option("--per-case", help="One hit per case: its best image.")
    ] = False,
    image_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Image share.", metavar="FLOAT")
    ] = 0.5,
    fusion: Annotated[Fusion, typer.Option(help="Score fusion of image and text.")] = "weighted",
    model: Annotated[
        str | None, typer.Option(help="Model source override.", metavar="TEXT")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Similar cases for an image, a report text, or both."""
    from mammosearch.pipeline import Laterality, SearchFilters, View, search_cases

    state: _State = ctx.obj

    def body() -> None:
        found = search_cases(
            directory, image=image, text=text, k=k,
            filters=SearchFilters(laterality=Laterality.parse(laterality), view=View.parse(view),
                                  label=label, exclude_patient=exclude_patient, per_case=per_case),
            weights=(image_weight, 1.0 - image_weight), fusion=fusion, model=model,
            settings=state.settings(),
        )  # fmt: skip
        if as_json:
            typer.echo(json.dumps([n.to_dict() for n in found], ensure_ascii=False))
        else:
            _neighbours_table(found)

    _run(body)


@app.command()
def assess(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Index directory.", metavar="DIRECTORY")],
    image: Annotated[Path | None, typer.Option(help="The image to assess.", metavar="PATH")] = None,
    report: Annotated[str | None, typer.Option(help="Its report text.", metavar="TEXT")] = None,
    report_file: Annotated[
        Path | None, typer.Option(help="Its report, as a file.", metavar="PATH")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Assess every row; JSON Lines to stdout.", metavar="PATH")
    ] = None,
    method: Annotated[Method, typer.Option(help="The path that decides (auto: DESIGN.md).")] = (
        "auto"
    ),
    model: Annotated[
        str | None, typer.Option(help="Model source override.", metavar="TEXT")
    ] = None,
    density_model: Annotated[
        Path | None,
        typer.Option(help="ConvNeXt density model directory (train-density).", metavar="PATH"),
    ] = None,
    exams: Annotated[
        bool, typer.Option("--exams", help="With --manifest: one object per exam (case_id).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="With --manifest: write a table, OUT.parquet or OUT.csv, of rows or with --exams "
            "of exams (default: JSON Lines to stdout).",
            metavar="PATH",
        ),
    ] = None,
    workers: _WorkersOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Breast density of an image, or of a manifest's rows.

    With the path that decided (the report, the neighbours' vote, or the density model).
    """
    from mammosearch.pipeline import (
        assess_image,
        iter_assessments,
        iter_exam_assessments,
        open_density_model,
        open_index,
        read_report_file,
        table_format,
        write_assessment_table,
        write_exam_table,
    )

    state: _State = ctx.obj

    def body() -> None:
        if output is not None:
            if manifest is None:
                raise _usage(ctx, "--output needs --manifest")
            if table_format(output) is None:
                raise _usage(ctx, "--output must end in .parquet or .csv")
        settings = state.settings(workers=workers)
        conv = open_density_model(density_model, settings, directory)
        if manifest is not None:
            if image is not None:
                raise _usage(ctx, "give --image or --manifest, not both")
            of_exams = iter_exam_assessments(
                directory,
                manifest,
                method=method,
                model=model,
                density_model=conv,
                workers=settings.workers,
            )
            of_rows = iter_assessments(directory, manifest, method=method, model=model,
                                       density_model=conv, workers=settings.workers)  # fmt: skip
            if output is not None:
                if exams:
                    rows = write_exam_table(of_exams, output)
                else:
                    rows = write_assessment_table(of_rows, output)
                what = "exams" if exams else "rows"
                _err.print(f"assessed {rows} {what} → {output}", highlight=False)
                return
            records: Iterator[Any] = of_exams if exams else of_rows
            for record in records:
                line = json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))
                sys.stdout.write(line)
                sys.stdout.write("\n")
            return
        if image is None:
            raise _usage(ctx, "give --image (with --report or --report-file) or --manifest")
        text = read_report_file(report_file) if report_file is not None else report
        index, embedder = open_index(directory, model)
        try:
            result = assess_image(
                index, embedder, image=image, report=text, method=method, density_model=conv
            ).to_dict()
        finally:
            index.close()
        if as_json:
            typer.echo(json.dumps(result, ensure_ascii=False))
            return
        d = result["density"]
        typer.echo(f"density {d['label']} ({d['method']}, confidence {d['confidence']:.2f})")
        typer.echo(
            "probabilities " + ", ".join(f"{k} {v:.2f}" for k, v in d["probabilities"].items())
        )
        for warning in result["warnings"]:
            typer.echo(f"warning: {warning}")

    _run(body)


evaluate_app = typer.Typer(
    help="Measure each path against labelled data.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("reports")
def evaluate_reports_command(
    ctx: typer.Context,
    gold: Annotated[
        Path,
        typer.Argument(help="Gold JSON Lines (id, density, birads, findings).", metavar="GOLD"),
    ],
    texts: Annotated[
        Path, typer.Argument(help="Folder with one <id>.txt per gold row.", metavar="TEXTS")
    ],
    workers: _WorkersOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    show_misses: Annotated[
        int,
        typer.Option(
            "--misses",
            min=0,
            help="List up to N finding errors and N density/BI-RADS errors.",
            metavar="INTEGER",
        ),
    ] = 10,
) -> None:
    """Score the report normalizer against gold reports.

    Density and BI-RADS accuracy, findings F1 with its errors by class and by finding type
    (report ids and labels only, never report text).
    """
    from mammosearch.pipeline import evaluate_reports, format_scores

    state: _State = ctx.obj

    def body() -> None:
        scores = evaluate_reports(gold, texts, settings=state.settings(workers=workers))
        if as_json:
            typer.echo(json.dumps(scores.to_dict(), ensure_ascii=False))
            return
        typer.echo(format_scores(scores, examples=show_misses))

    _run(body)


def _train_config(
    arch: str, size: int, patch: int, epochs: int, batch: int, seed: int, init: str,
    ensemble: int, regularise: tuple[float, float, float, bool],
) -> Any:  # fmt: skip
    from mammosearch.pipeline import TrainConfig

    mixup, drop_path, ema, flip_tta = regularise
    return TrainConfig(arch=arch, image_size=size, patch=patch, epochs=epochs, batch_size=batch,
                       seed=seed, init=init, ensemble=ensemble, mixup=mixup, drop_path=drop_path,
                       ema=ema, flip_tta=flip_tta)  # fmt: skip


_ENSEMBLE_HELP = "ConvNeXts trained with seeds seed, seed+1, ...; their mean predicts."
_MixupOpt = Annotated[
    float,
    typer.Option(min=0.0, help="Mixup: Beta(a, a) blends of two films and their labels (0: off).",
                 metavar="FLOAT"),
]  # fmt: skip
_DropPathOpt = Annotated[
    float,
    typer.Option(min=0.0, max=0.9, help="Stochastic depth rate (0: off).", metavar="FLOAT"),
]
_PatchOpt = Annotated[
    int,
    typer.Option(min=0, max=1024, metavar="INTEGER",
                 help="Train and read the ConvNeXt on patches of this many pixels cut from the "
                 "input square, an image's label from the mean over its breast patches "
                 "(0: the whole input)."),
]  # fmt: skip
_EmaOpt = Annotated[
    float,
    typer.Option(min=0.0, max=0.9999, metavar="FLOAT",
                 help="Keep an exponential moving average of the weights with this decay per "
                 "step, validated and saved instead of the last weights (0: off)."),
]  # fmt: skip
_FlipTtaOpt = Annotated[
    bool,
    typer.Option("--flip-tta/--no-flip-tta",
                 help="Predict the mean of each film and its vertical flip."),
]  # fmt: skip
# TrainConfig's defaults and train_density's policy folds (a test holds them equal)
_SIZE, _PATCH, _EPOCHS, _BATCH, _DROP_PATH, _ENSEMBLE = 256, 64, 12, 64, 0.1, 1
_POLICY_FOLDS = 4


@app.command("train-density")
def train_density_command(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(help="Labelled manifest (CSV or JSONL).", metavar="MANIFEST")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory.", metavar="PATH")
    ],
    arch: Annotated[
        str, typer.Option(help="convnext_atto … convnext_base.", metavar="TEXT")
    ] = "convnext_atto",
    size: Annotated[
        int, typer.Option(min=64, max=1024, help="Input size (pixels).", metavar="INTEGER")
    ] = _SIZE,
    patch: _PatchOpt = _PATCH,
    epochs: Annotated[
        int, typer.Option(min=1, help="Maximum epochs.", metavar="INTEGER")
    ] = _EPOCHS,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Images (or patches) per step.", metavar="INTEGER")
    ] = _BATCH,
    ensemble: Annotated[
        int, typer.Option(min=1, help=_ENSEMBLE_HELP, metavar="INTEGER")
    ] = _ENSEMBLE,
    mixup: _MixupOpt = 0.0,
    drop_path: _DropPathOpt = _DROP_PATH,
    ema: _EmaOpt = 0.0,
    flip_tta: _FlipTtaOpt = False,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same model).", metavar="INTEGER")] = 0,
    init: Annotated[
        str,
        typer.Option(
            help="Initial weights: auto (ImageNet from the local hub cache when there, "
            "else none), imagenet (download), none, or a .safetensors/.pth file.",
            metavar="TEXT",
        ),
    ] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    label_order: Annotated[
        str | None, typer.Option(help="Label order, comma-separated.", metavar="TEXT")
    ] = None,
    policy_folds: Annotated[
        int,
        typer.Option(
            min=0,
            help="Patient folds that tune the assess policy (0: no tuning).",
            metavar="INTEGER",
        ),
    ] = _POLICY_FOLDS,
    cross_fit: Annotated[
        bool,
        typer.Option(
            "--cross-fit/--no-cross-fit",
            help="The ConvNeXt is the policy folds' networks, each scored on the patients it "
            "never saw (--no-cross-fit: one more network trained on every image).",
        ),
    ] = True,
    workers: _WorkersOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the ConvNeXt density model.

    Writes OUTPUT/model.safetensors and OUTPUT/config.json.
    """
    from mammosearch.pipeline import train_density

    def body() -> None:
        order = [x.strip() for x in label_order.split(",")] if label_order else None
        model = train_density(
            manifest, output,
            _train_config(arch, size, patch, epochs, batch_size, seed, init, ensemble,
                          (mixup, drop_path, ema, flip_tta)),
            label_order_arg=order, resume=resume, progress=progress and sys.stderr.isatty(),
            policy_folds=policy_folds, workers=ctx.obj.settings(workers=workers).workers,
            cross_fit=cross_fit,
        )  # fmt: skip
        trained = f"trained {arch} at {size} px{f' (on {patch} px patches)' if patch else ''}"
        if "cross_fit" in model.config:
            oof = model.config["policy"]["accuracy"]["convnext"]
            summary = (
                f"{trained}: {len(model.config['members'])} networks cross-fitted on "
                f"{model.config['cross_fit']} patient folds of {model.config['train_images']} "
                f"images, out-of-fold accuracy {oof:.3f} (each network on patients it never saw)"
            )
        else:
            best = model.config.get("best", {})
            summary = (
                f"{trained} on {model.config['train_images']} images; best validation accuracy "
                f"{best.get('val_accuracy', 0):.3f}, quadratic kappa "
                f"{best.get('val_quadratic_kappa', 0):.3f} (epoch {best.get('epoch')})"
            )
        _err.print(f"{summary} → {output}", highlight=False)
        if "policy" in model.config:
            _err.print(_policy_line(model.config["policy"]), highlight=False)

    _run(body)


def _policy_line(policy: dict[str, Any]) -> str:
    """What train-density chose for assess, and why (its inner-fold scores)."""
    if "candidates" not in policy:  # a policy of an earlier version
        return f"assess policy: vote above margin {policy['vote_margin']}, else {policy['weights']}"
    rule, table, idle = policy["rule"], policy["candidates"], policy.get("idle", [])
    gate = f" (the vote decides above margin {policy['vote_margin']:.3f})" if "gate" in rule else ""
    return (
        f"assess policy: {rule}{gate}, weights {policy['weights']}; inner-fold accuracy "
        f"{table[rule]['mean']:.3f} ± {table[rule]['se']:.3f} over {policy['inner_folds']} "
        f"patient folds, best {policy['best']} {table[policy['best']]['mean']:.3f}: the simplest "
        f"rule of the most paths within one standard error"
        f"{'; no better than the majority class: ' + ', '.join(idle) if idle else ''}; "
        f"out-of-fold accuracy per path {policy['accuracy']}"
    )


@evaluate_app.command("density")
def evaluate_density_command(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(help="Labelled manifest (CSV or JSONL).", metavar="MANIFEST")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="Score this model instead of cross-validating.", metavar="PATH"
        ),
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Patient-level folds.", metavar="INTEGER")] = 5,
    arch: Annotated[
        str, typer.Option(help="Architecture for cross-validation.", metavar="TEXT")
    ] = "convnext_atto",
    size: Annotated[
        int, typer.Option(min=64, max=1024, help="Input size.", metavar="INTEGER")
    ] = _SIZE,
    patch: _PatchOpt = _PATCH,
    epochs: Annotated[
        int, typer.Option(min=1, help="Maximum epochs per fold.", metavar="INTEGER")
    ] = _EPOCHS,
    ensemble: Annotated[
        int, typer.Option(min=1, help=_ENSEMBLE_HELP, metavar="INTEGER")
    ] = _ENSEMBLE,
    mixup: _MixupOpt = 0.0,
    drop_path: _DropPathOpt = _DROP_PATH,
    ema: _EmaOpt = 0.0,
    flip_tta: _FlipTtaOpt = False,
    seed: Annotated[int, typer.Option(help="Seed.", metavar="INTEGER")] = 0,
    init: Annotated[
        str, typer.Option(help="Initial weights (as train-density).", metavar="TEXT")
    ] = "auto",
    convnext: Annotated[
        bool,
        typer.Option(
            "--convnext/--no-convnext",
            help="Cross-validate the ConvNeXt too (--no-convnext: the weight-free paths only).",
        ),
    ] = True,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            help="Cross-validate again with fold seeds seed+1, seed+2, ... and print each "
            "path's mean and spread over the repeats.",
            metavar="INTEGER",
        ),
    ] = 1,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Write every image's out-of-fold probabilities per path (each repeat) to this "
            "CSV.",
            metavar="PATH",
        ),
    ] = None,
    as_trained: Annotated[
        bool,
        typer.Option(
            "--as-trained",
            help="Score what train-density ships: in each fold, its cross-fitted networks on "
            "--policy-folds patient folds of the other folds' images and the policy they chose "
            "(policy folds × folds trainings).",
        ),
    ] = False,
    policy_folds: Annotated[
        int,
        typer.Option(
            min=2, help="train-density's policy folds (with --as-trained).", metavar="INTEGER"
        ),
    ] = _POLICY_FOLDS,
    plot: Annotated[
        Path | None, typer.Option(help="Save the confusion matrix as a PNG.", metavar="PATH")
    ] = None,
    workers: _WorkersOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Density accuracy of every path, by patient cross-validation.

    ConvNeXt, probe, vote and combined; or of a trained model (--model).
    """
    from mammosearch.pipeline import evaluate_density

    if as_trained and (model is not None or not convnext):
        raise _usage(ctx, "--as-trained cross-validates the ConvNeXt: not with --model or "
                          "--no-convnext")  # fmt: skip

    def body() -> None:
        scores = evaluate_density(
            manifest, _train_config(arch, size, patch, epochs, _BATCH, seed, init, ensemble,
                                    (mixup, drop_path, ema, flip_tta)), model_dir=model,
            folds=folds, progress=sys.stderr.isatty(), with_convnext=convnext,
            workers=ctx.obj.settings(workers=workers).workers, repeats=repeats,
            predictions=predictions, as_trained=policy_folds if as_trained else 0,
        )  # fmt: skip
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("probe")
def evaluate_probe_command(
    manifest: Annotated[
        Path, typer.Argument(help="Labelled manifest (CSV or JSONL).", metavar="MANIFEST")
    ],
    embedder: Annotated[EmbedderName, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.", metavar="TEXT")] = None,
    folds: Annotated[int, typer.Option(min=2, help="Patient-level folds.", metavar="INTEGER")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds.", metavar="INTEGER")] = 0,
    save: Annotated[
        Path | None,
        typer.Option(help="Also fit on every row and write DIR/probe.json.", metavar="PATH"),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Save the confusion matrix as a PNG.", metavar="PATH")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Linear probe on frozen image vectors, by patient folds."""
    from mammosearch.pipeline import evaluate_probe

    def body() -> None:
        scores = evaluate_probe(manifest, embedder=embedder, model=model, folds=folds, seed=seed,
                                save=save)  # fmt: skip
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("zero-shot")
def evaluate_zero_shot_command(
    manifest: Annotated[
        Path, typer.Argument(help="Labelled manifest (CSV or JSONL).", metavar="MANIFEST")
    ],
    embedder: Annotated[EmbedderName, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.", metavar="TEXT")] = None,
    prompts: Annotated[
        Path | None, typer.Option(help='Prompts JSON: {"LABEL": ["prompt", ...]}.', metavar="PATH")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Save the confusion matrix as a PNG.", metavar="PATH")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Zero-shot density from prompt ensembles.

    Needs an image-text model such as BiomedCLIP.
    """
    from mammosearch.pipeline import evaluate_zero_shot

    def body() -> None:
        scores = evaluate_zero_shot(manifest, embedder=embedder, model=model, prompts=prompts)
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("retrieval")
def evaluate_retrieval_command(
    ctx: typer.Context,
    manifest: Annotated[
        Path, typer.Argument(help="Labelled manifest (CSV or JSONL).", metavar="MANIFEST")
    ],
    embedder: Annotated[EmbedderName, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.", metavar="TEXT")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Neighbours.", metavar="INTEGER")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Leave-one-patient-out density vote and precision@k."""
    import tempfile

    from mammosearch.pipeline import evaluate_retrieval

    state: _State = ctx.obj

    def body() -> None:
        with tempfile.TemporaryDirectory(prefix="mammosearch-eval-") as tmp:
            scores = evaluate_retrieval(
                manifest, embedder=embedder, model=model, k=k, settings=state.settings(),
                work_dir=Path(tmp) / "index",
            )  # fmt: skip
        _print_scores(scores, as_json, None)
        if not as_json:
            typer.echo(
                "  (the index's feature statistics and the vote's temperature and "
                "margin were fitted on every image, each query's included, as a build "
                "fits them: a little optimistic; 'evaluate density' fits them per fold)"
            )

    _run(body)


def _print_scores(scores: dict[str, Any], as_json: bool, plot: Path | None) -> None:
    """Print evaluation scores (a line each, a table of paths, or JSON) and save the confusion
    matrix as a PNG (one per path, ``NAME-PATH.png``, when there are several)."""
    paths: dict[str, dict[str, Any]] = scores.get("paths") or {}
    if plot is not None:
        from mammosearch.pipeline import plot_confusion

        if not paths:
            plot_confusion(scores, plot)
        for name, metrics in paths.items():
            plot_confusion(metrics, plot.with_name(f"{plot.stem}-{name}{plot.suffix}"),
                           title=f"{name}: accuracy {metrics['accuracy']:.2f}")  # fmt: skip
    if as_json:
        typer.echo(json.dumps(scores))
        return
    for key, value in scores.items():
        if key not in ("paths", "exams", "nested", "repeats"):
            typer.echo(f"{key:<22} {value}")
    _paths_table(paths)
    if "exams" in scores:
        typer.echo(f"per exam (the denser breast; {scores['exams']['n']} exams):")
        _paths_table(scores["exams"]["paths"])
    if "nested" in scores:
        _nested_table(scores["nested"])
    if "repeats" in scores:
        _repeats_table(scores["repeats"])


def _nested_table(nested: dict[str, Any]) -> None:
    if nested.get("as_trained"):
        typer.echo(f"nested cross-validation (each outer fold's model and policy as train-density "
                   f"makes them of the other folds, {nested['as_trained']} policy folds), "
                   f"accuracy per outer fold:")  # fmt: skip
    else:
        typer.echo("nested cross-validation (the policy chosen on the other outer folds only), "
                   "accuracy per outer fold:")  # fmt: skip
    for name, s in nested["scores"].items():
        folds = " ".join(f"{x:.2f}" for x in s["folds"])
        typer.echo(f"  {name:<10}{s['mean']:.3f} ± {s['sd']:.3f} (mean ± sd)   {folds}")
    typer.echo(f"  rules chosen: {', '.join(nested['rules'])}")
    typer.echo("  these figures are optimistic where the paths' own settings (features, input "
               "size, epochs) were chosen on these images")  # fmt: skip


def _repeats_table(repeats: dict[str, Any]) -> None:
    seeds = ", ".join(str(s) for s in repeats["seeds"])
    typer.echo(f"repeated cross-validation (fold seeds {seeds}), accuracy per film:")
    for name, s in repeats["paths"].items():
        runs = " ".join(f"{x:.3f}" for x in s["accuracy"])
        typer.echo(f"  {name:<10}{s['mean']:.3f} ± {s['sd']:.3f} (mean ± sd)   {runs}")
    typer.echo("  (combined: each outer fold's policy chosen without that fold; optimistic "
               "where the paths' own settings were chosen on these images)")  # fmt: skip


def _paths_table(paths: dict[str, dict[str, Any]]) -> None:
    if not paths:
        return
    typer.echo(f"{'path':<10}{'accuracy':>9}  {'95% CI':<16}{'macro-F1':>9}"
               f"{'lin. κ':>8}{'quad. κ':>9}")  # fmt: skip
    for name, m in paths.items():
        ci = m.get("ci95", {}).get("accuracy")
        band = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        typer.echo(f"{name:<10}{m['accuracy']:>9.3f}  {band:<16}{m['macro_f1']:>9.3f}"
                   f"{m['linear_kappa']:>8.3f}{m['quadratic_kappa']:>9.3f}")  # fmt: skip


@app.command()
def deid(
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Argument(help="Folder of DICOM files (searched recursively).", metavar="SOURCE")
    ],
    output: Annotated[
        Path, typer.Argument(help="Folder for the de-identified files.", metavar="OUTPUT")
    ],
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the secret key (else MAMMOSEARCH_DEID_KEY; else random).",
            metavar="PATH",
        ),
    ] = None,
    allow_secondary_capture: Annotated[
        bool,
        typer.Option(help="Pass secondary captures (digitised film archived as WSD/SYN)."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """De-identify a folder of DICOMs; quarantine the rest.

    PS3.15 Annex E Basic Profile for mammography.
    """
    from mammosearch.pipeline import deidentify

    state: _State = ctx.obj

    def body() -> None:
        report = deidentify(source, output, settings=state.settings(), key_file=key_file,
                            progress=progress,
                            allow_secondary_capture=allow_secondary_capture)  # fmt: skip
        quarantined = sum(report.quarantined.values())
        typer.echo(f"{report.total} files: {report.written} de-identified in {report.studies} "
                   f"studies, {quarantined} quarantined {dict(report.quarantined) or ''}, "
                   f"{sum(report.failed.values())} failed {dict(report.failed) or ''}")  # fmt: skip

    _run(body)


_HOST = Annotated[
    str, typer.Option(help="Address to bind. 127.0.0.1 keeps it on this machine.", metavar="TEXT")
]
_AUTH = Annotated[
    list[str] | None,
    typer.Option(
        "--auth", help="user:password login (repeatable); prefer --auth-file.", metavar="TEXT"
    ),
]
_AUTH_FILE = Annotated[
    Path | None,
    typer.Option(help="File of user:password lines (keeps them out of `ps`).", metavar="PATH"),
]
_PORT = Annotated[
    int | None,
    typer.Option(help="Port (default: first free from 7860; 0: any free one).", metavar="INTEGER"),
]
_MAX_UPLOAD = Annotated[
    str, typer.Option(help="Largest upload accepted, e.g. 50mb.", metavar="TEXT")
]


def _launch(
    directory: Path, settings: Settings, *, host: str, port: int | None, auth: list[str] | None,
    auth_file: Path | None, model: str | None, density_model: Path | None, max_upload: str,
) -> None:  # fmt: skip
    from mammosearch.pipeline import CaseService
    from mammosearch.ui import parse_auth, serve

    logins = parse_auth(auth or (), auth_file)
    if host not in ("127.0.0.1", "localhost", "::1") and not logins:
        logger.warning("serving on %s without a login: anyone who can reach it can search", host)
    with CaseService(directory, model=model, density_model=density_model,
                     settings=settings) as service:  # fmt: skip
        about = service.about()
        app = serve(service, settings, host=host, port=port, auth=logins, block=False,
                    max_upload=max_upload)  # fmt: skip
        typer.echo(f"mammosearch UI on {app.local_url} ({about['embedder']}, "
                   f"{about['images']} images); Ctrl+C stops it")  # fmt: skip
        try:
            app.block_thread()
        finally:
            app.close()


@app.command()
def serve(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Index directory (index build).", metavar="DIRECTORY")
    ],
    host: _HOST = "127.0.0.1",
    port: _PORT = None,
    auth: _AUTH = None,
    auth_file: _AUTH_FILE = None,
    model: Annotated[
        str | None, typer.Option(help="Model source override.", metavar="TEXT")
    ] = None,
    density_model: Annotated[
        Path | None,
        typer.Option(help="ConvNeXt density model directory (train-density).", metavar="PATH"),
    ] = None,
    max_upload: _MAX_UPLOAD = "50mb",
) -> None:
    """Open the search UI over an index.

    A browser at the printed address.
    """
    state: _State = ctx.obj
    _run(lambda: _launch(directory, state.settings(), host=host, port=port, auth=auth,
                         auth_file=auth_file, model=model, density_model=density_model,
                         max_upload=max_upload))  # fmt: skip


@app.command()
def demo(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            help="A folder of images (optional labels.csv) or a manifest; "
            "default: the bundled synthetic demo corpus.",
            metavar="PATH",
        ),  # fmt: skip
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Build, start, run one image and one text query, exit."),
    ] = False,
    embedder: Annotated[EmbedderName, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[
        str | None, typer.Option(help="Model source for the embedder.", metavar="TEXT")
    ] = None,
    host: _HOST = "127.0.0.1",
    port: _PORT = None,
    auth: _AUTH = None,
    auth_file: _AUTH_FILE = None,
    max_upload: _MAX_UPLOAD = "50mb",
) -> None:
    """The search UI on a demo index (no data needed).

    Built once and cached; no data or internet needed.
    """
    from mammosearch.pipeline import demo_index

    state: _State = ctx.obj

    def body() -> None:
        settings = state.settings()
        index = demo_index(settings, data=data, embedder=embedder, model=model, progress=True)
        if check:
            from mammosearch.ui import demo_check

            for line in demo_check(index, settings, data=data):
                typer.echo(line)
            return
        _launch(index, settings, host=host, port=port, auth=auth, auth_file=auth_file,
                model=model, density_model=None, max_upload=max_upload)  # fmt: skip

    _run(body)


class _UsageError(typer.BadParameter):
    """A wrong combination of options (exit 2, with the command's usage and its own --help)."""

    def format_message(self) -> str:
        return self.message


def _usage(ctx: typer.Context, message: str) -> _UsageError:
    return _UsageError(message, ctx=ctx)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
