"""The ``ganops`` command line: one command per DVC stage.

Each command reads ``params.yaml``, calls its stage module and turns user errors
(``GanopsError``) into one line on stderr and a non-zero exit code, without a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ganops import __version__
from ganops.config import Params
from ganops.errors import WRITE_ERRNOS, ConfigError, GanopsError, output_error
from ganops.locks import exclusive
from ganops.params_file import load_params, uncommitted_changes

app = typer.Typer(
    help=(
        "GANs on MNIST and Fashion-MNIST as a reproducible pipeline: "
        "download -> prepare -> classifier -> train -> evaluate."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's layout: paragraphs rewrapped to the terminal, flags bare
)

F = TypeVar("F", bound=Callable[..., Any])

ParamsOption = Annotated[
    Path, typer.Option("--params", "-p", help="Params file to read.", dir_okay=False)
]


def user_errors(command: F) -> F:
    """Report ``GanopsError`` as ``error: <message>`` and exit with its code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GanopsError as error:
            print(f"error: {error}", file=sys.stderr)
            raise typer.Exit(error.exit_code) from None
        except OSError as error:
            if error.errno not in WRITE_ERRNOS:
                raise
            # A write that did not go through atomic_path (e.g. inside a library).
            where = error.filename or "an output"
            print(f"error: {output_error(where, error)}", file=sys.stderr)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _params(path: Path) -> Params:
    try:
        return load_params(path)
    except ConfigError as error:
        changed = uncommitted_changes(path)
        if not changed:
            raise
        raise error.with_note(
            f"{path} differs from its committed version in: {'; '.join(changed)} "
            f"(`git checkout {path}` restores it)"
        ) from None


def _version(value: bool) -> None:
    if value:
        print(f"ganops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """GANs on MNIST and Fashion-MNIST as a reproducible pipeline:
    download -> prepare -> classifier -> train -> evaluate."""


@app.command()
@user_errors
def download(
    out: Annotated[Path, typer.Option(help="Directory for the four verified .gz files.")] = Path(
        "data/raw"
    ),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Fetch the dataset's four IDX files and verify their decompressed SHA-256.

    Reads params: data.dataset, data.source. Writes OUT/*.gz and OUT/manifest.json and
    nothing else in OUT (other files stay); on any failure those files are left as they were.
    """
    from ganops.stages import download as stage

    config = _params(params).data
    with exclusive(out, command="download"):
        stage.run(config, out)


@app.command()
@user_errors
def prepare(
    raw: Annotated[Path, typer.Option(help="Output of `ganops download`.")] = Path("data/raw"),
    out: Annotated[Path, typer.Option(help="Directory for train.pt/test.pt.")] = Path(
        "data/prepared"
    ),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Decode the IDX files, normalize pixels to [-1, 1], keep labels.

    Reads RAW/*.gz and params data.*. Writes OUT/train.pt, OUT/test.pt (images float32
    (N,1,28,28) and labels int64, loadable with torch.load(weights_only=True)) and OUT/meta.json.
    """
    from ganops.stages import prepare as stage

    config = _params(params).data
    with exclusive(out, command="prepare"):
        stage.run(config, raw, out_dir=out)


@app.command()
@user_errors
def classifier(
    data: Annotated[Path, typer.Option(help="Output of `ganops prepare`.")] = Path("data/prepared"),
    out: Annotated[Path, typer.Option(help="Directory for classifier.pt.")] = Path(
        "outputs/classifier"
    ),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the small CNN that judges generated samples' classes (class metrics, fcd).

    Reads DATA/train.pt, DATA/test.pt and params classifier.*. Writes OUT/classifier.pt and
    OUT/metrics.json (its test accuracy).
    """
    from ganops.stages import classifier as stage

    config = _params(params).classifier
    with exclusive(out, command="classifier"):
        stage.run(config, data, out_dir=out)


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Option(help="Output of `ganops prepare`.")] = Path("data/prepared"),
    models: Annotated[Path, typer.Option(help="Directory for model files.")] = Path("models"),
    out: Annotated[Path, typer.Option(help="Directory for curves and samples.")] = Path(
        "outputs/train"
    ),
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Start over: ignore and remove this config's interrupted run."
        ),
    ] = False,
    classifier: Annotated[
        Path | None,
        typer.Option(help="Classifier from `ganops classifier`: score samples each epoch."),
    ] = None,
    resume_dir: Annotated[
        Path,
        typer.Option(help="Where unfinished runs' checkpoints are kept (git-ignored)."),
    ] = Path(".ganops/resume"),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Train the GAN (on the GPU when present) and log the run to MLflow.

    Reads DATA/train.pt and params model.*, train.*, tracking.*. Writes MODELS/generator.pt,
    MODELS/checkpoint.pt, OUT/losses.csv (per-interval losses, a DVC plot), OUT/quality.csv
    (with --classifier: class metrics and fcd every train.score_every epochs, a DVC plot),
    OUT/samples.png and OUT/mlflow_run.json (the run that evaluate logs to).

    Checkpoints every train.checkpoint_every steps and on Ctrl-C/SIGTERM, to
    RESUME_DIR/<key>/checkpoint.pt (key: a hash of the config that shapes training, the data
    and MODELS), hard-linked to MODELS/checkpoint.pt. Running again with the same config
    resumes an interrupted run: `ganops train`, `dvc repro`, and `dvc exp run` with the same
    -S values in the workspace (which restores MODELS from dvc.lock first; the kept copy is
    put back). Another config never resumes it: `ganops train` and `dvc repro` refuse,
    naming the changed keys, while MODELS/checkpoint.pt is the interrupted run's, and `dvc
    exp run` starts a new run and names the kept ones. `dvc exp run --temp` (and --queue)
    trains in a new temporary copy each time and cannot resume. The finished run removes
    its folder in RESUME_DIR (as starting over does).

    Several processes (GPUs, or CPU processes): torchrun --nproc-per-node N -m ganops train.
    Both networks train with DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
    train.batch_size is the global batch, each process taking batch_size / N of it; only
    rank 0 logs to MLflow and writes files.
    """
    from ganops.stages import train as stage

    config = _params(params)
    main = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 writes
    with exclusive(models, out, command="train", enabled=main):
        stage.run(
            config,
            data,
            models_dir=models,
            out_dir=out,
            fresh=fresh,
            classifier=classifier,
            resume_dir=resume_dir,
        )


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Option(help="Output of `ganops prepare`.")] = Path("data/prepared"),
    models: Annotated[Path, typer.Option(help="Output of `ganops train`.")] = Path("models"),
    train_out: Annotated[Path, typer.Option(help="Train stage outputs.")] = Path("outputs/train"),
    out: Annotated[Path, typer.Option(help="Directory for metrics.json.")] = Path(
        "outputs/evaluate"
    ),
    cache: Annotated[Path, typer.Option(help="Cache of real-image features.")] = Path(
        "data/fid_cache"
    ),
    classifier: Annotated[
        Path | None,
        typer.Option(help="Classifier from `ganops classifier` (omit: no class metrics)."),
    ] = None,
    floor: Annotated[
        bool,
        typer.Option(
            "--floor",
            help="Score real training images instead of the generator, into OUT/floor.json.",
        ),
    ] = False,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """FID, KID, precision/recall (one Inception pass) and class metrics of generated samples.

    Reads MODELS/generator.pt, DATA/{train,test}.pt, params evaluate.*. Writes OUT/metrics.json
    (e.g. {"fid_10k": ..., "kid_10k": ..., "classes_covered": ...}) and OUT/classes.csv, caches
    real-image features in CACHE and logs the metrics to the MLflow run recorded in
    TRAIN_OUT/mlflow_run.json. --floor gives the same metrics for real images: the best a
    generator can reach at this sample count.
    """
    from ganops.stages import evaluate as stage

    config = _params(params)
    with exclusive(out, command="evaluate"):
        stage.run(
            config,
            data,
            models_dir=models,
            train_dir=train_out,
            out_dir=out,
            cache_dir=cache,
            classifier_path=classifier,
            floor=floor,
        )


@app.command()
@user_errors
def sample(
    model: Annotated[
        Path,
        typer.Option(
            help="Generator file from `ganops train`, or a registered version: "
            "models:/ganops-generator@champion (@candidate, /VERSION)."
        ),
    ] = Path("models/generator.pt"),
    out: Annotated[Path, typer.Option(help="PNG file for the grid.")] = Path(
        "outputs/sample/samples.png"
    ),
    num: Annotated[int, typer.Option("--num", "-n", help="Images (or walk steps).")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    digit: Annotated[
        int | None, typer.Option(help="Class to draw (conditional models only).")
    ] = None,
    interpolate: Annotated[
        int | None,
        typer.Option(
            help="Second seed: draw a latent walk (spherical) from --seed to it, in --num steps."
        ),
    ] = None,
    images_dir: Annotated[
        Path | None, typer.Option(help="Also write each image as its own PNG here.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Draw images from a trained generator into a PNG grid.

    Reads MODEL (the file carries its model config; a models:/ URI is fetched from the
    MLflow store of PARAMS' tracking.uri, or $MLFLOW_TRACKING_URI, or the repo's mlflow.db).
    Writes OUT and, with --images-dir, one PNG per image. Conditional models draw 0..9 in
    reading order, or one class with --digit.
    """
    from ganops.stages import sample as stage

    tracking = ""
    if str(model).startswith("models:/"):
        from ganops.config import TrackingConfig
        from ganops.tracking.store import tracking_uri

        cfg = _params(params).tracking if params.is_file() else TrackingConfig()
        tracking = tracking_uri(cfg, Path.cwd())
    stage.run(
        model,
        out,
        num=num,
        seed=seed,
        digit=digit,
        interpolate_to=interpolate,
        images_dir=images_dir,
        device_name=device,
        tracking=tracking,
    )


@app.command()
@user_errors
def recipe(
    name: Annotated[
        str | None, typer.Argument(help="Recipe to run (a recipes/NAME.yaml); omit to list.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Run the printed `dvc exp run` command now.")
    ] = False,
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory of recipe files.", file_okay=False)
    ] = Path("recipes"),
    params: ParamsOption = Path("params.yaml"),
    set_params: Annotated[
        list[str] | None,
        typer.Option(
            "-S",
            "--set-param",
            help="KEY=VALUE passed on to `dvc exp run -S` after the recipe's (repeatable).",
        ),
    ] = None,
) -> None:
    """Print (or, with --apply, run) the `dvc exp run -n NAME -S key=value ...` of a recipe.

    A recipe is a params overlay (recipes/NAME.yaml; docs/recipes.md): its model.* and
    train.* keys start from config.py's defaults, not params.yaml's, and the whole, with
    any -S overrides, is validated before anything runs. Only the values that differ from
    PARAMS are set; the command is checked to give exactly those params through DVC's own
    -S parser. Without NAME, lists the recipes.
    """
    import shlex
    import subprocess

    from ganops import recipes
    from ganops.errors import UsageError

    if name is None:
        if set_params:
            raise UsageError("-S KEY=VALUE needs a recipe NAME (`ganops recipe` lists them)")
        for known in recipes.recipe_names(directory):
            print(f"{known}: {recipes.summary(directory / f'{known}.yaml')}")
        return
    chosen = recipes.load_recipe(name, directory, base=_params(params))
    chosen = recipes.with_overrides(chosen, set_params or [])
    command = recipes.checked_command(chosen, params)
    print(shlex.join(command))
    if apply:
        raise typer.Exit(subprocess.run(command, check=False).returncode)


@app.command("params")
def params_command() -> None:
    """Print every params.yaml key with its type, default, allowed values and meaning.

    Generated from the config classes that validate params.yaml (a Markdown table; the
    copy in docs/params.md is checked against it by a test).
    """
    from ganops.config import params_reference_markdown

    print(params_reference_markdown(), end="")


@app.command()
@user_errors
def gate(
    metrics: Annotated[Path, typer.Option(help="Metrics file from `ganops evaluate`.")] = Path(
        "outputs/evaluate/metrics.json"
    ),
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Git revision (or DVC experiment name) whose committed metrics file is the "
            "baseline; a git revision wins over an experiment of the same name."
        ),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(help="Append the table here too (e.g. $GITHUB_STEP_SUMMARY).", dir_okay=False),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="On pass, move the registered model's 'champion' alias to this run's version.",
        ),
    ] = False,
    train_out: Annotated[
        Path, typer.Option(help="Train stage outputs (its mlflow_run.json names the run).")
    ] = Path("outputs/train"),
    models: Annotated[
        Path, typer.Option(help="Train stage models (the generator the run reference names).")
    ] = Path("models"),
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Pass or fail the model on its metrics: exit 0 pass, 1 fail, 2 bad input.

    Reads METRICS and params gate.* (gate.max_fid: an absolute limit; with --baseline REV,
    FID may be worse than REV's by at most gate.fid_tolerance). Prints a table of metric,
    value, limit and result. With --promote, a pass makes the run's registered generator
    (tracking.registered_model) the 'champion': only when METRICS were scored from that very
    generator file and run (else run `ganops evaluate` first), and the tracking server answers.
    """
    from ganops import gate as gating

    config = _params(params)
    promotion = None
    if promote:
        from ganops.generator_file import scored_generator

        generator = scored_generator(models, config.train.keep)
        promotion = gating.promotion_target(config.tracking, train_out, generator=generator)
    gating.run(
        config.gate,
        metrics,
        baseline=baseline,
        repo=Path.cwd(),
        summary=summary,
        promotion=promotion,
    )


@app.command()
@user_errors
def ui(
    port: Annotated[int, typer.Option(help="Port to serve the UI on.", min=1, max=65535)] = 5000,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: reachable from others).")
    ] = "127.0.0.1",
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Open the MLflow UI on the runs this project logged (until Ctrl-C).

    Shows the store params tracking.uri names (else $MLFLOW_TRACKING_URI, else the repo's
    mlflow.db): `mlflow ui` with that --backend-store-uri, one worker, and MLflow's own
    deprecation warnings silenced. A tracking server (http:// or https://) has its own UI:
    the address of its runs table there is printed instead.
    """
    from ganops.tracking.store import tracking_uri
    from ganops.tracking.ui import (
        announce_ui,
        check_port_free,
        serve_ui,
        server_runs_table,
        ui_command,
    )

    tracking = _params(params).tracking
    uri = tracking_uri(tracking, Path.cwd())
    if uri.startswith(("http://", "https://")):
        table = server_runs_table(uri, tracking.experiment)
        print(f"the runs are on the tracking server {uri}: open {table} in a browser")
        return
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        print(f"note: {uri} does not exist yet (no run logged); `dvc repro` logs the first")
    argv, env = ui_command(uri, host=host, port=port)
    check_port_free(host, port)
    print(f"starting the MLflow UI for {uri} (it takes up to half a minute)", flush=True)
    ready = announce_ui(host=host, port=port, uri=uri, experiment=tracking.experiment)
    raise typer.Exit(serve_ui(argv, env, on_started=ready))
