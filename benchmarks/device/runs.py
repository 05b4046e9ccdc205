"""Write one params file per named run: params.yaml with tracking off, the bundle's data and
Inception weights, and the run's own ``section.key=value`` overrides (as ``dvc exp run -S``).

    python benchmarks/device/runs.py BUNDLE_DATASET_DIR WEIGHTS OUT_DIR "default;s1 train.seed=1"
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def main() -> None:
    dataset_dir, weights, out, specs = sys.argv[1:5]
    root = Path(__file__).resolve().parents[2]
    base = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    base["data"]["source"] = str(Path(dataset_dir).resolve())
    base["data"]["dataset"] = Path(dataset_dir).name  # the bundle's folder: mnist | fashion-mnist
    base["tracking"]["enabled"] = False
    base["evaluate"]["inception_weights"] = weights
    for spec in specs.split(";"):
        name, *overrides = spec.split()
        params = yaml.safe_load(yaml.safe_dump(base))
        for item in overrides:
            key, value = item.split("=", 1)
            section, field = key.split(".")
            params[section][field] = yaml.safe_load(value)
        Path(out, f"p_{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


if __name__ == "__main__":
    main()
