"""Every JSON file ganops reads back is untrusted: each fault is one DataError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganops.errors import DataError
from ganops.files import MAX_JSON_BYTES, parse_json, read_json


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"fid_10k": ' + "9" * 5000 + "}", "unreadable JSON"),
        ('{"fid_10k": ', "not valid JSON"),
        (" " * (MAX_JSON_BYTES + 1), "more than any file ganops writes"),
    ],
    ids=["deep", "long-integer", "truncated", "huge"],
)
def test_crafted_json_is_one_data_error_naming_the_file(text: str, says: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_json(text, "outputs/evaluate/metrics.json")
    message = str(caught.value)
    assert message.startswith("outputs/evaluate/metrics.json: ") and says in message
    assert "\n" not in message


def test_read_json_names_what_the_file_is(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(DataError, match=r"meta\.json: unreadable prepared-data metadata"):
        read_json(path, "prepared-data metadata")
    path.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(path, "prepared-data metadata") == {"a": [1, 2]}
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "absent.json", "run reference")
