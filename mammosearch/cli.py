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
from mammosearch.errors import IndexIntegrityError, InputError, MammosearchError

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


_EngineOpt = Annotated[
    str,
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
    ),
]
_WorkDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--work-dir",
        help="With --engine ray: the folder of the job's Parquet shards (default: OUTPUT.parts "
        "beside the output; kept when interrupted, so the same command resumes).",
    ),
]


def _ray_options(engine: str, address: str | None, work_dir: Path | None) -> Any:
    """The Ray engine's options, or ``None`` for the local engine (a Ray flag without it is an
    error)."""
    from mammosearch.pipeline import RayOptions, check_engine

    check_engine(engine)
    if engine != "ray":
        if address is not None or work_dir is not None:
            raise InputError(
                "--ray-address and --work-dir need --engine ray", fix="add --engine ray"
            )
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
    scrub: Annotated[
        bool,
        typer.Option("--scrub", help="Scrub PHI first; records carry the scrubbed text."),
    ] = False,
    engine: _EngineOpt = "local",
    ray_address: _RayAddressOpt = None,
    work_dir: _WorkDirOpt = None,
) -> None:
    """Normalize free-text reports into BI-RADS terms (one JSON object per report)."""
    from mammosearch.pipeline import normalize_reports, sample_reports_dir

    state: _State = ctx.obj

    def body() -> None:
        if sample and input is not None:
            raise _usage("give INPUT or --sample, not both", "normalize")
        source = sample_reports_dir() if sample else input
        if source is None:
            raise _usage(
                "give INPUT (a report file, folder, .csv, .jsonl or .parquet) or --sample",
                "normalize",
            )
        settings = state.settings(workers=workers)
        ray = _ray_options(engine, ray_address, work_dir)
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
    manifest: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet manifest (DESIGN.md).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Index directory.")],
    embedder: Annotated[str, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[
        str | None, typer.Option(help="Model source: hf-hub:ORG/NAME or local-dir:PATH.")
    ] = None,
    update: Annotated[bool, typer.Option("--update", help="Add only what is new.")] = False,
    density_model: Annotated[
        Path | None, typer.Option(help="Copy this trained density model into the index.")
    ] = None,
    label_order: Annotated[
        str | None, typer.Option(help="Label order, comma-separated (unknown label sets).")
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
        ),
    ] = None,
    engine: _EngineOpt = "local",
    ray_address: _RayAddressOpt = None,
    work_dir: _WorkDirOpt = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="Split the vector indexes into N shard files, searched together "
            "(default: 1, or the existing index's count with --update). docs/SCALING.md.",
        ),
    ] = None,
) -> None:
    """Build (or --update) a case index: images, reports, vectors, thumbnails, manifest."""
    from mammosearch.pipeline import BuildOptions, build_index

    state: _State = ctx.obj

    def body() -> None:
        order = [x.strip() for x in label_order.split(",")] if label_order else None
        settings = state.settings(store=store)
        ray = _ray_options(engine, ray_address, work_dir)
        options = BuildOptions(
            embedder=embedder, model=model, update=update, label_order=order,
            progress=progress and sys.stderr.isatty(), density_model=density_model,
            keep_report_text=keep_report_text, keep_source_paths=keep_source_paths,
            resume=resume, allow_secondary_capture=allow_secondary_capture,
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

    _run(body)


@index_app.command("verify")
def index_verify(
    directory: Annotated[Path, typer.Argument(help="Index directory.")],
) -> None:
    """Check every checksum and the id alignment of vectors and case store (exit 2 if not)."""
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
    directory: Annotated[Path, typer.Argument(help="Index directory.")],
) -> None:
    """Bring an index's case store (SQLite or PostgreSQL) to this version's schema."""
    from mammosearch.pipeline import migrate_index

    def body() -> None:
        typer.echo(f"case store at schema revision {migrate_index(directory)}")

    _run(body)


@index_app.command("remove")
def index_remove(
    directory: Annotated[Path, typer.Argument(help="Index directory.")],
    case: Annotated[list[str], typer.Option("--case", help="Case id to remove (repeatable).")],
) -> None:
    """Remove cases from an index."""
    from mammosearch.pipeline import remove_cases

    def body() -> None:
        removed = remove_cases(directory, case)
        typer.echo(f"removed {removed} images of {len(case)} cases")

    _run(body)


def _neighbours_table(neighbours: list[Any]) -> None:
    from rich.table import Table

    table = Table("rank", "case", "score", "label", "side", "view", "image", "text")
    for rank, n in enumerate(neighbours, start=1):
        table.add_row(
            str(rank), n.case_id, f"{n.score:.3f}", n.label or "-", n.laterality or "-",
            n.view or "-", f"{n.scores.get('image', float('nan')):.3f}",
            f"{n.scores.get('text', float('nan')):.3f}",
        )  # fmt: skip
    Console().print(table)


@app.command()
def search(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Index directory.")],
    image: Annotated[Path | None, typer.Option(help="Query image (DICOM, PNG, JPEG).")] = None,
    text: Annotated[str | None, typer.Option(help="Query report text.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Neighbours.")] = 10,
    laterality: Annotated[str | None, typer.Option(help="Only L or R.")] = None,
    view: Annotated[str | None, typer.Option(help="Only this view (CC, MLO…).")] = None,
    label: Annotated[str | None, typer.Option(help="Only this density label.")] = None,
    exclude_patient: Annotated[str | None, typer.Option(help="Leave out this patient.")] = None,
    image_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Image share.")] = 0.5,
    fusion: Annotated[str, typer.Option(help="weighted or rrf.")] = "weighted",
    model: Annotated[str | None, typer.Option(help="Model source override.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Similar cases for an image, a report text, or both."""
    from mammosearch.pipeline import SearchFilters, search_cases

    state: _State = ctx.obj

    def body() -> None:
        found = search_cases(
            directory, image=image, text=text, k=k,
            filters=SearchFilters(laterality=laterality, view=view, label=label,
                                  exclude_patient=exclude_patient),
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
    directory: Annotated[Path, typer.Argument(help="Index directory.")],
    image: Annotated[Path | None, typer.Option(help="The image to assess.")] = None,
    report: Annotated[str | None, typer.Option(help="Its report text.")] = None,
    report_file: Annotated[Path | None, typer.Option(help="Its report, as a file.")] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Assess every row; JSON Lines to stdout.")
    ] = None,
    method: Annotated[str, typer.Option(help="auto, vote, convnext or probe.")] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source override.")] = None,
    density_model: Annotated[
        Path | None, typer.Option(help="ConvNeXt density model directory (train-density).")
    ] = None,
    exams: Annotated[
        bool, typer.Option("--exams", help="With --manifest: one object per exam (case_id).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Breast density of an image with the path that decided (report, vote or ConvNeXt)."""
    from mammosearch.pipeline import (
        assess_image,
        iter_assessments,
        iter_exam_assessments,
        open_density_model,
        open_index,
        read_report_file,
    )

    state: _State = ctx.obj

    def body() -> None:
        conv = open_density_model(density_model, state.settings(), directory)
        if manifest is not None:
            if image is not None:
                raise _usage("give --image or --manifest, not both", "assess")
            records = (
                iter_exam_assessments(directory, manifest, method=method, model=model,
                                      density_model=conv)
                if exams
                else (a.to_dict() for a in iter_assessments(
                    directory, manifest, method=method, model=model, density_model=conv))
            )  # fmt: skip
            for record in records:
                sys.stdout.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                sys.stdout.write("\n")
            return
        if image is None:
            raise _usage("give --image (with --report or --report-file) or --manifest", "assess")
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
    gold: Annotated[Path, typer.Argument(help="Gold JSON Lines (id, density, birads, findings).")],
    texts: Annotated[Path, typer.Argument(help="Folder with one <id>.txt per gold row.")],
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    show_misses: Annotated[
        int,
        typer.Option(
            "--misses", min=0, help="List up to N finding errors and N density/BI-RADS errors."
        ),
    ] = 10,
) -> None:
    """Density and BI-RADS accuracy, findings F1 with its errors by class and by finding type,
    of the normalizer on gold reports (report ids and labels only, never report text)."""
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
    arch: str, size: int, epochs: int, batch: int, seed: int, init: str, ensemble: int
) -> Any:
    from mammosearch.pipeline import TrainConfig

    return TrainConfig(arch=arch, image_size=size, epochs=epochs, batch_size=batch, seed=seed,
                       init=init, ensemble=ensemble)  # fmt: skip


_ENSEMBLE_HELP = "ConvNeXts trained with seeds seed, seed+1, ...; their mean predicts."
_SIZE, _EPOCHS, _ENSEMBLE = 128, 30, 1  # TrainConfig's defaults (a test holds them equal)


@app.command("train-density")
def train_density_command(
    manifest: Annotated[Path, typer.Argument(help="Labelled manifest (CSV or JSONL).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory.")],
    arch: Annotated[str, typer.Option(help="convnext_atto … convnext_base.")] = "convnext_atto",
    size: Annotated[int, typer.Option(min=64, max=1024, help="Input size (pixels).")] = _SIZE,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs.")] = _EPOCHS,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per step.")] = 16,
    ensemble: Annotated[int, typer.Option(min=1, help=_ENSEMBLE_HELP)] = _ENSEMBLE,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same model).")] = 0,
    init: Annotated[
        str,
        typer.Option(
            help="Initial weights: auto (ImageNet from the local hub cache when there, "
            "else none), imagenet (download), none, or a .safetensors/.pth file."
        ),
    ] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    label_order: Annotated[str | None, typer.Option(help="Label order, comma-separated.")] = None,
    policy_folds: Annotated[
        int, typer.Option(min=0, help="Folds that tune the assess policy (0: no tuning).")
    ] = 3,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the ConvNeXt density model: OUTPUT/model.safetensors + OUTPUT/config.json."""
    from mammosearch.pipeline import train_density

    def body() -> None:
        order = [x.strip() for x in label_order.split(",")] if label_order else None
        model = train_density(
            manifest, output, _train_config(arch, size, epochs, batch_size, seed, init, ensemble),
            label_order_arg=order, resume=resume, progress=progress and sys.stderr.isatty(),
            policy_folds=policy_folds,
        )  # fmt: skip
        best = model.config.get("best", {})
        _err.print(
            f"trained {arch} at {size} px on {model.config['train_images']} images; best "
            f"validation accuracy {best.get('val_accuracy', 0):.3f}, quadratic kappa "
            f"{best.get('val_quadratic_kappa', 0):.3f} (epoch {best.get('epoch')}) → {output}",
            highlight=False,
        )
        if "policy" in model.config:
            policy = model.config["policy"]
            _err.print(f"assess policy (out-of-fold accuracy): {policy['accuracy']}; the vote "
                       f"decides above margin {policy['vote_margin']:.3f}, else the weights "
                       f"{policy['weights']}", highlight=False)  # fmt: skip

    _run(body)


@evaluate_app.command("density")
def evaluate_density_command(
    manifest: Annotated[Path, typer.Argument(help="Labelled manifest (CSV or JSONL).")],
    model: Annotated[
        Path | None, typer.Option("--model", help="Score this model instead of cross-validating.")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Patient-level folds.")] = 5,
    arch: Annotated[str, typer.Option(help="Architecture for cross-validation.")] = "convnext_atto",
    size: Annotated[int, typer.Option(min=64, max=1024, help="Input size.")] = _SIZE,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs per fold.")] = _EPOCHS,
    ensemble: Annotated[int, typer.Option(min=1, help=_ENSEMBLE_HELP)] = _ENSEMBLE,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    init: Annotated[str, typer.Option(help="Initial weights (as train-density).")] = "auto",
    plot: Annotated[Path | None, typer.Option(help="Save the confusion matrix as a PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Density accuracy of every path (ConvNeXt, probe, vote, combined) by patient
    cross-validation, or of a trained model (--model)."""
    from mammosearch.pipeline import evaluate_density

    def body() -> None:
        scores = evaluate_density(
            manifest, _train_config(arch, size, epochs, 16, seed, init, ensemble), model_dir=model,
            folds=folds, progress=sys.stderr.isatty(),
        )  # fmt: skip
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("probe")
def evaluate_probe_command(
    manifest: Annotated[Path, typer.Argument(help="Labelled manifest (CSV or JSONL).")],
    embedder: Annotated[str, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="Patient-level folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds.")] = 0,
    save: Annotated[
        Path | None, typer.Option(help="Also fit on every row and write DIR/probe.json.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Save the confusion matrix as a PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Linear probe (logistic regression) on frozen image vectors: patient cross-validation."""
    from mammosearch.pipeline import evaluate_probe

    def body() -> None:
        scores = evaluate_probe(manifest, embedder=embedder, model=model, folds=folds, seed=seed,
                                save=save)  # fmt: skip
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("zero-shot")
def evaluate_zero_shot_command(
    manifest: Annotated[Path, typer.Argument(help="Labelled manifest (CSV or JSONL).")],
    embedder: Annotated[str, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.")] = None,
    prompts: Annotated[
        Path | None, typer.Option(help='Prompts JSON: {"LABEL": ["prompt", ...]}.')
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Save the confusion matrix as a PNG.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Zero-shot density from prompt ensembles (needs an image-text model such as BiomedCLIP)."""
    from mammosearch.pipeline import evaluate_zero_shot

    def body() -> None:
        scores = evaluate_zero_shot(manifest, embedder=embedder, model=model, prompts=prompts)
        _print_scores(scores, as_json, plot)

    _run(body)


@evaluate_app.command("retrieval")
def evaluate_retrieval_command(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="Labelled manifest (CSV or JSONL).")],
    embedder: Annotated[str, typer.Option(help=_EMBEDDER_HELP)] = "auto",
    model: Annotated[str | None, typer.Option(help="Model source.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Neighbours.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Leave-one-patient-out density vote (accuracy, macro-F1, kappa) and precision@k."""
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
        if key not in ("paths", "exams"):
            typer.echo(f"{key:<22} {value}")
    _paths_table(paths)
    if "exams" in scores:
        typer.echo(f"per exam (the denser breast; {scores['exams']['n']} exams):")
        _paths_table(scores["exams"]["paths"])


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
    source: Annotated[Path, typer.Argument(help="Folder of DICOM files (searched recursively).")],
    output: Annotated[Path, typer.Argument(help="Folder for the de-identified files.")],
    key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the secret key (else MAMMOSEARCH_DEID_KEY; else random)."),
    ] = None,
    allow_secondary_capture: Annotated[
        bool,
        typer.Option(help="Pass secondary captures (digitised film archived as WSD/SYN)."),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """De-identify DICOMs (PS3.15 Annex E Basic Profile for mammography); quarantine the rest."""
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


_HOST = Annotated[str, typer.Option(help="Address to bind. 127.0.0.1 keeps it on this machine.")]
_AUTH = Annotated[
    list[str] | None,
    typer.Option("--auth", help="user:password login (repeatable); prefer --auth-file."),
]
_AUTH_FILE = Annotated[
    Path | None, typer.Option(help="File of user:password lines (keeps them out of `ps`).")
]
_PORT = Annotated[
    int | None, typer.Option(help="Port (default: first free from 7860; 0: any free one).")
]
_MAX_UPLOAD = Annotated[str, typer.Option(help="Largest upload accepted, e.g. 50mb.")]


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
    directory: Annotated[Path, typer.Argument(help="Index directory (index build).")],
    host: _HOST = "127.0.0.1",
    port: _PORT = None,
    auth: _AUTH = None,
    auth_file: _AUTH_FILE = None,
    model: Annotated[str | None, typer.Option(help="Model source override.")] = None,
    density_model: Annotated[
        Path | None, typer.Option(help="ConvNeXt density model directory (train-density).")
    ] = None,
    max_upload: _MAX_UPLOAD = "50mb",
) -> None:
    """Open the search UI over an index (a browser at the printed address)."""
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
            "default: the bundled synthetic demo corpus."
        ),  # fmt: skip
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Build, start, run one image and one text query, exit."),
    ] = False,
    embedder: Annotated[str, typer.Option(help="auto (BiomedCLIP if it loads) or a name.")] = (
        "auto"
    ),
    model: Annotated[str | None, typer.Option(help="Model source for the embedder.")] = None,
    host: _HOST = "127.0.0.1",
    port: _PORT = None,
    auth: _AUTH = None,
    auth_file: _AUTH_FILE = None,
    max_upload: _MAX_UPLOAD = "50mb",
) -> None:
    """The search UI on a demo index, built once and cached (no data or internet needed)."""
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


def _usage(message: str, command: str) -> MammosearchError:
    return InputError(message, fix=f"see 'mammosearch {command} --help'")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
