"""repository/files.py: the server reads only regular files inside the repository, under a size cap."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from model_server.repository.artifact import FileLimits, ModelLoadError, load_artifact
from model_server.repository.files import UnsafeFile, read_file
from model_server.repository.model_config import ModelConfigError, read_model_config

from ..helpers import MODEL, finishes
from ..versions import ROW, Replica, label_of, publish_iris


def test_a_regular_file_inside_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f").write_bytes(b"x" * 3_000_000)
    (tmp_path / "m" / "link").symlink_to("f")  # inside the repository: followed

    assert read_file(tmp_path / "m" / "f", tmp_path, 3_000_000, "CAP") == b"x" * 3_000_000
    assert read_file(tmp_path / "m" / "link", tmp_path, 3_000_000, "CAP") == b"x" * 3_000_000


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")

    refused = finishes(lambda: read_file(tmp_path / "config.json", tmp_path, 100, "CAP"))

    assert isinstance(refused, UnsafeFile)
    assert str(refused) == f"{tmp_path / 'config.json'} is a FIFO, not a regular file"


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/hostname"])
def test_a_symlink_that_leads_out_is_refused(tmp_path: Path, target: str) -> None:
    (tmp_path / "metadata.json").symlink_to(target)

    with pytest.raises(UnsafeFile, match=f"leads out of the model repository \\(to {target}\\)"):
        read_file(tmp_path / "metadata.json", tmp_path, 1 << 20, "CAP")


def test_a_device_inside_the_repository_is_refused(tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "model.skops", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("making a device node needs root")

    refused = finishes(lambda: read_file(tmp_path / "model.skops", tmp_path, 100, "CAP"))

    assert str(refused) == f"{tmp_path / 'model.skops'} is a character device, not a regular file"


def test_a_file_over_the_cap_is_refused_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)

    with pytest.raises(UnsafeFile, match=r"big holds 101 bytes, over MODEL_MAX_JSON_BYTES \(100\)"):
        read_file(tmp_path / "big", tmp_path, 100, "MODEL_MAX_JSON_BYTES")
    assert read_file(tmp_path / "big", tmp_path, 101, "MODEL_MAX_JSON_BYTES") == b"x" * 101


def test_a_directory_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()

    with pytest.raises(UnsafeFile, match="is a directory"):
        read_file(tmp_path / "d", tmp_path, 100, "CAP")
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "none", tmp_path, 100, "CAP")


def test_a_fifo_config_is_an_invalid_config(tmp_path: Path) -> None:
    (tmp_path / MODEL).mkdir()
    os.mkfifo(tmp_path / MODEL / "config.json")

    refused = finishes(lambda: read_model_config(tmp_path / MODEL / "config.json", tmp_path))

    assert isinstance(refused, ModelConfigError)
    assert "is a FIFO, not a regular file" in str(refused)


# The cap each file of a version is under: its setting, and the FileLimits field that holds it.
CAPS = {
    "metadata.json": ("MODEL_MAX_JSON_BYTES", "max_json_bytes"),
    "model.skops": ("MODEL_MAX_ARTIFACT_BYTES", "max_artifact_bytes"),
}


@pytest.mark.parametrize("fault", ["fifo", "oversized"])
@pytest.mark.parametrize("name", sorted(CAPS))
def test_a_version_with_a_fifo_or_oversized_file_is_refused(tmp_path: Path, name: str, fault: str) -> None:
    version = publish_iris(tmp_path, 1)
    if fault == "fifo":
        (version / name).unlink()
        os.mkfifo(version / name)
        limits, reason = FileLimits(tmp_path), f"{version / name} is a FIFO, not a regular file"
    else:  # one byte over its cap
        size = (version / name).stat().st_size
        setting, field = CAPS[name]
        limits = FileLimits(tmp_path, **{field: size - 1})
        reason = f"{version / name} holds {size} bytes, over {setting} ({size - 1})"

    refused = finishes(lambda: load_artifact(version, limits=limits))

    assert isinstance(refused, ModelLoadError)
    assert reason in str(refused)


def test_an_artifact_over_its_cap_is_refused(tmp_path: Path) -> None:
    version = publish_iris(tmp_path, 1)
    size = (version / "model.skops").stat().st_size

    with pytest.raises(ModelLoadError, match=f"over MODEL_MAX_ARTIFACT_BYTES \\({size - 1}\\)"):
        load_artifact(version, limits=FileLimits(tmp_path, max_artifact_bytes=size - 1))
    assert load_artifact(version, limits=FileLimits(tmp_path, max_artifact_bytes=size)).sha256


def test_a_fifo_config_dropped_into_a_running_repository_leaves_the_replica_serving(
    app_factory: Callable[..., object], tmp_path: Path
) -> None:
    publish_iris(tmp_path, 1)
    replica = Replica(app_factory(model_repository=tmp_path))
    os.mkfifo(tmp_path / MODEL / "config.json")

    assert finishes(replica.sync) is None
    response = replica.client.post("/predict", json={"features": ROW})
    assert response.status_code == 200
    assert response.get_json()["prediction"] == [label_of(1)]
    assert replica.scrape()[("model_server_model_config_invalid", (("model", MODEL),))] == 1
