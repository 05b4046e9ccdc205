"""``ganops gate --baseline REV``: the metrics file as committed at a git revision or in a DVC
experiment, and whether it was scored the same way as the file gated against it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ganops.errors import DataError, warn
from ganops.metrics_file import MetricsFile, parse_metrics

EXPS_NAMESPACE = "refs/exps"
# DVC's own refs under refs/exps (queue, temporary runs, apply): not experiments.
_NOT_EXPERIMENTS = {"apply", "celery", "exec", "temp", "stash"}


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def experiment_commit(repo: Path, name: str) -> str | None:
    """The commit of the DVC experiment ``name``, or None when there is none.

    DVC keeps an experiment as the ref ``refs/exps/<baseline[:2]>/<baseline[2:]>/<name>``
    (``dvc.repo.experiments.refs.ExpRefInfo``). A name used by experiments of several
    baseline commits resolves to the one based on HEAD, as ``dvc exp`` does; else it is an
    error that lists them.
    """
    listed = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)", EXPS_NAMESPACE)
    found = {}  # baseline commit -> experiment commit
    for line in listed.stdout.splitlines():
        ref, _, commit = line.partition(" ")
        parts = ref.split("/")
        if len(parts) == 5 and parts[4] == name and parts[2] not in _NOT_EXPERIMENTS:
            found[parts[2] + parts[3]] = commit
    if len(found) <= 1:
        return next(iter(found.values()), None)
    head = _git(repo, "rev-parse", "HEAD").stdout.strip()
    if head in found:
        return found[head]
    raise DataError(
        f"--baseline {name!r}: experiments of that name exist for several baseline commits "
        f"({', '.join(sorted(b[:7] for b in found))}) and none is HEAD; give the experiment's "
        "commit instead (`dvc exp show --sha`)"
    )


def resolve(repo: Path, revision: str) -> tuple[str, str]:
    """The commit-ish to read ``revision`` at, and how to name it: a git revision (branch,
    tag, commit, ``HEAD~1``) wins over a DVC experiment of the same name."""
    if not revision or revision.startswith("-") or not revision.isprintable():
        raise DataError(
            f"--baseline {revision!r} is not a git revision; give a branch, tag or commit "
            "such as main or HEAD~1, or a DVC experiment's name"
        )
    if _git(repo, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").returncode == 0:
        return revision, revision
    commit = experiment_commit(repo, revision)
    if commit is not None:
        return commit, f"{revision} (experiment, {commit[:7]})"
    return revision, revision


def baseline_file(revision: str, path: Path, *, repo: Path) -> tuple[MetricsFile, str]:
    """The metrics file ``path`` as committed at ``revision`` (e.g. ``main``, ``HEAD~1`` or
    the experiment ``quick``), and the name to show for it.

    ``revision`` is never read as a git option: one starting with '-' (``--output=FILE``
    would make ``git show`` write a file) or holding control characters is refused.
    """
    commit, shown = resolve(repo, revision)
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise DataError(f"--baseline needs a git repository; {repo} is not in one")
    try:
        relative = path.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    except ValueError:
        raise DataError(f"{path} is outside the git repository {top.stdout.strip()}") from None
    result = _git(repo, "show", "--end-of-options", f"{commit}:{relative}")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["git show failed"])[-1]
        raise DataError(
            f"baseline {revision!r}: cannot read {relative} there ({reason}); the baseline must "
            "be a git revision or DVC experiment whose commit holds the metrics file"
        )
    return parse_metrics(result.stdout, f"{revision}:{relative}"), shown


def compare_scoring(current: MetricsFile, base: MetricsFile, shown: str) -> str:
    """One line saying how each side was scored; a ``DataError`` when they do not compare:
    another dataset, sample count or Inception weights. A file from before ganops recorded
    how it was scored is compared on its metrics alone, with a warning."""
    count, base_count = current.metrics.get("num_samples"), base.metrics.get("num_samples")
    if count is not None and base_count is not None and count != base_count:
        raise DataError(
            f"baseline {shown}: num_samples {base_count:g}, this run {count:g}; metrics from "
            "different sample counts are not comparable, so evaluate both with the same "
            "evaluate.num_samples"
        )
    older = [f.source for f in (current, base) if f.scored is None]
    if older:
        verb = "records" if len(older) == 1 else "record"
        warn(
            f"{' and '.join(older)} {verb} no dataset or Inception weights (written "
            "before ganops recorded them): cannot check that the two were scored alike"
        )
        return ""
    for key, what in (("dataset", "dataset"), ("inception_weights", "Inception weights")):
        ours, theirs = current.scored_value(key), base.scored_value(key)
        if ours != theirs:
            raise DataError(
                f"baseline {shown}: scored on {what} {theirs}, this run on {ours}; the two do "
                "not compare. Pick a baseline scored the same way, or evaluate it again"
            )
    line = f"baseline {shown}: {_how(base)}; this run: {_how(current)}\n"
    if current.scored_value("precision") != base.scored_value("precision"):
        warn(
            "the two were scored at different evaluate.precision; FID moves with it "
            "(benchmarks/RESULTS.md), so a small difference may be the precision's"
        )
    return line


def _how(metrics: MetricsFile) -> str:
    return (
        f"{metrics.scored_value('dataset')}, {metrics.scored_value('precision')}, Inception "
        f"{metrics.scored_value('inception_weights')}"
    )
