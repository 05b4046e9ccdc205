"""The search's settings (benchmarks/search/settings.tsv) are valid params on the CPU
variant, each name is unique, and each changes something (but the baseline)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ganops.config import params_from_dict, to_flat_dict

ROOT = Path(__file__).resolve().parents[2]


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (ROOT / "benchmarks/search/settings.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, overrides = line.partition("\t")
        assert name not in found, f"setting {name} twice"
        found[name] = overrides.split()
    return found


def test_every_setting_is_valid_params_on_the_cpu_variant() -> None:
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    base["model"]["dcgan_channels"], base["train"]["epochs"] = 32, 30
    variant = to_flat_dict(params_from_dict(base))
    listed = settings()
    assert len(listed) >= 16 and listed["base"] == []
    for name, overrides in listed.items():
        raw = yaml.safe_load(yaml.safe_dump(base))
        for pair in overrides:
            key, value = pair.split("=", 1)
            section, field = key.split(".")
            assert field in raw[section], f"{name}: {key} is not a params.yaml key"
            raw[section][field] = yaml.safe_load(value)
        changed = to_flat_dict(params_from_dict(raw))  # a ConfigError names a bad value
        assert (changed != variant) == bool(overrides), name
