"""model_server.repository.layout: finding models and versions on disk, and fingerprints of version folders."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from model_server.repository import layout
from model_server.repository.layout import ModelDir, RepositoryError, Scan, fingerprint, scan


def version(root: Path, model: str, number: str) -> Path:
    """A version folder as a publisher leaves it."""
    path = root / model / number
    path.mkdir(parents=True)
    (path / "model.skops").write_bytes(b"artifact")
    (path / "metadata.json").write_text("{}")
    return path


def reasons(found: Scan) -> dict[str, str]:
    return {s.path.name: s.reason for s in found.skipped}


def test_models_and_versions_in_numeric_order(tmp_path: Path) -> None:
    for model, number in [("wine", "10"), ("iris", "3"), ("iris", "1"), ("wine", "2"), ("iris", "2")]:
        version(tmp_path, model, number)

    found = scan(tmp_path)

    assert list(found) == ["iris", "wine"]
    assert found["iris"] == ModelDir(
        name="iris",
        path=tmp_path / "iris",
        versions={1: tmp_path / "iris/1", 2: tmp_path / "iris/2", 3: tmp_path / "iris/3"},
        config_path=None,
    )
    assert list(found["wine"].versions) == [2, 10]  # numbers, not strings: 10 after 2
    assert found.skipped == ()


def test_a_scan_is_a_dict_of_models(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")

    found = scan(tmp_path)

    assert isinstance(found, dict)
    assert found == {"iris": ModelDir("iris", tmp_path / "iris", {1: tmp_path / "iris/1"}, None)}


def test_model_dir_is_frozen(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    model = scan(tmp_path)["iris"]

    with pytest.raises(AttributeError):
        model.name = "other"  # type: ignore[misc]


def test_config_json_is_found(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    (tmp_path / "iris/config.json").write_text('{"version_policy": {"all": {}}}')

    assert scan(tmp_path)["iris"].config_path == tmp_path / "iris/config.json"


def test_config_json_of_any_kind_is_passed_on(tmp_path: Path) -> None:
    """A config.json that is not a file is model_config's to report (with the model's name), not skipped here."""
    (tmp_path / "iris/config.json").mkdir(parents=True)

    found = scan(tmp_path)

    assert found["iris"].config_path == tmp_path / "iris/config.json"
    assert found.skipped == ()


def test_a_model_without_versions_is_listed(tmp_path: Path) -> None:
    (tmp_path / "iris").mkdir()

    assert scan(tmp_path)["iris"].versions == {}


def test_hidden_entries_and_plain_files_are_ignored_silently(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    version(tmp_path, "iris", ".2.tmp-3f9a01bc")  # being published
    (tmp_path / ".git").mkdir()
    (tmp_path / ".hidden-model").mkdir()
    (tmp_path / "README.md").write_text("models")
    (tmp_path / "iris/notes.txt").write_text("v1 is the baseline")
    (tmp_path / "iris/.DS_Store").write_bytes(b"")

    found = scan(tmp_path)

    assert list(found) == ["iris"]
    assert list(found["iris"].versions) == [1]
    assert found.skipped == ()


@pytest.mark.parametrize("name", ["01", "0", "00", "+1", "-1", "1.0", "v2", "1e3", " 1", "1 ", "١", "0x1", "1_0"])
def test_version_names_must_be_canonical_positive_integers(tmp_path: Path, name: str) -> None:
    version(tmp_path, "iris", "1")
    version(tmp_path, "iris", name)

    found = scan(tmp_path)

    assert list(found["iris"].versions) == [1]
    assert reasons(found) == {name: "not a version number (a positive integer without leading zeros)"}


def test_versions_fit_an_int64(tmp_path: Path) -> None:
    version(tmp_path, "iris", "9" * 18)
    version(tmp_path, "iris", "1" + "0" * 18)

    found = scan(tmp_path)

    assert list(found["iris"].versions) == [10**18 - 1]
    assert list(reasons(found)) == ["1" + "0" * 18]


@pytest.mark.parametrize("name", ["a", "Z", "7", "iris-rf", "A.b_c-1", "a" * 64])
def test_valid_model_names(tmp_path: Path, name: str) -> None:
    version(tmp_path, name, "1")

    assert list(scan(tmp_path)) == [name]


@pytest.mark.parametrize("name", ["-iris", "_iris", "a" * 65, "with space", "iris+rf", "äpfel", "a:b"])
def test_invalid_model_names_are_skipped(tmp_path: Path, name: str) -> None:
    version(tmp_path, "iris", "1")
    version(tmp_path, name, "1")

    found = scan(tmp_path)

    assert list(found) == ["iris"]
    assert list(reasons(found)) == [name]
    assert "not a model name" in reasons(found)[name]


def test_a_file_named_like_a_version_is_reported(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    (tmp_path / "iris/2").write_bytes(b"model.skops copied to the wrong place")

    found = scan(tmp_path)

    assert list(found["iris"].versions) == [1]
    assert reasons(found) == {"2": "named like a version but not a directory"}


def test_symlinked_models_and_versions_are_followed(tmp_path: Path) -> None:
    repository, elsewhere = tmp_path / "repository", tmp_path / "elsewhere"
    repository.mkdir()
    target = version(elsewhere, "store", "7")
    (repository / "iris").mkdir()
    (repository / "iris/1").symlink_to(target)
    (repository / "wine").symlink_to(elsewhere / "store")

    found = scan(repository)

    assert found["iris"].versions == {1: repository / "iris/1"}  # the path in the repository, not the target
    assert found["wine"].versions == {7: repository / "wine/7"}


def test_broken_symlinks_are_skipped_with_a_reason(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    (tmp_path / "iris/2").symlink_to(tmp_path / "gone")
    (tmp_path / "wine").symlink_to(tmp_path / "also-gone")

    found = scan(tmp_path)

    assert list(found) == ["iris"]
    assert list(found["iris"].versions) == [1]
    assert reasons(found) == {"2": "broken symlink", "wine": "broken symlink"}


def test_a_symlink_loop_is_skipped_with_a_reason(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    (tmp_path / "iris/2").symlink_to(tmp_path / "iris/2")

    found = scan(tmp_path)

    assert list(found["iris"].versions) == [1]
    assert reasons(found)["2"].startswith("cannot be read: ")


def test_an_unreadable_model_is_skipped_and_the_others_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version(tmp_path, "iris", "1")
    version(tmp_path, "wine", "1")
    names = layout._names

    def refuse_wine(directory: Path) -> list[str]:
        if directory.name == "wine":
            raise PermissionError(13, "Permission denied")
        return names(directory)

    monkeypatch.setattr(layout, "_names", refuse_wine)

    found = scan(tmp_path)

    assert list(found) == ["iris"]
    assert reasons(found) == {"wine": "cannot be read: Permission denied"}
    assert found.unreadable == {"wine": "cannot be read: Permission denied"}, "there, not gone"


@pytest.mark.parametrize(("code", "text"), [(errno.EIO, "Input/output error"), (errno.ESTALE, "Stale file handle")])
def test_folders_that_fail_to_stat_are_unreadable_not_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, text: str
) -> None:
    version(tmp_path, "iris", "1")
    version(tmp_path, "iris", "2")
    version(tmp_path, "wine", "1")
    real_stat = os.stat

    def failing(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if Path(str(path)) in (tmp_path / "wine", tmp_path / "iris" / "2"):
            raise OSError(code, text)
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(layout.os, "stat", failing)

    found = scan(tmp_path)

    assert list(found) == ["iris"]
    assert found.unreadable == {"wine": f"cannot be read: {text}"}
    assert list(found["iris"].versions) == [1]
    assert found["iris"].unreadable == {2: f"cannot be read: {text}"}


def test_a_vanished_or_broken_entry_is_not_unreadable(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    (tmp_path / "wine").symlink_to(tmp_path / "nowhere")
    (tmp_path / "iris" / "2").symlink_to(tmp_path / "nowhere")

    found = scan(tmp_path)

    assert found.unreadable == {}
    assert found["iris"].unreadable == {}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_a_model_without_read_permission_is_skipped(tmp_path: Path) -> None:
    version(tmp_path, "iris", "1")
    locked = version(tmp_path, "wine", "1").parent
    locked.chmod(0)
    try:
        found = scan(tmp_path)
    finally:
        locked.chmod(0o755)

    assert list(found) == ["iris"]
    assert reasons(found) == {"wine": "cannot be read: Permission denied"}


def test_skipped_entries_read_as_one_line(tmp_path: Path) -> None:
    version(tmp_path, "iris", "01")

    (skipped,) = scan(tmp_path).skipped

    assert str(skipped) == f"{tmp_path / 'iris/01'}: not a version number (a positive integer without leading zeros)"


def test_a_missing_repository_raises(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match=r"^model repository .*/nowhere does not exist$"):
        scan(tmp_path / "nowhere")


def test_a_repository_that_is_a_file_raises(tmp_path: Path) -> None:
    (tmp_path / "models").write_text("")

    with pytest.raises(RepositoryError, match=r"^model repository .*/models is not a directory$"):
        scan(tmp_path / "models")


def test_an_unreadable_repository_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(directory: Path) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(layout, "_names", refuse)

    with pytest.raises(RepositoryError, match=r"^model repository .* cannot be read: Permission denied$"):
        scan(tmp_path)


def test_an_empty_repository_has_no_models(tmp_path: Path) -> None:
    assert scan(tmp_path) == {}


# --- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_hashable(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")

    assert fingerprint(path) == fingerprint(path)
    assert hash(fingerprint(path)) == hash(fingerprint(path))


def test_fingerprint_changes_when_a_file_is_added(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    before = fingerprint(path)

    (path / "extra.json").write_text("{}")

    assert fingerprint(path) != before


def test_fingerprint_changes_when_a_file_is_removed(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    before = fingerprint(path)

    (path / "metadata.json").unlink()

    assert fingerprint(path) != before


def test_fingerprint_changes_when_a_file_is_resized(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    stat = (path / "model.skops").stat()
    before = fingerprint(path)

    (path / "model.skops").write_bytes(b"a longer artifact")
    os.utime(path / "model.skops", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old mtime

    assert fingerprint(path) != before


def test_fingerprint_changes_when_a_file_is_modified_in_place(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    stat = (path / "model.skops").stat()
    before = fingerprint(path)

    (path / "model.skops").write_bytes(b"ARTIFACT")  # same size
    os.utime(path / "model.skops", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))

    assert fingerprint(path) != before


def test_fingerprint_changes_when_permissions_are_fixed(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    (path / "model.skops").chmod(0)
    before = fingerprint(path)

    (path / "model.skops").chmod(0o644)

    assert fingerprint(path) != before


def test_fingerprint_changes_when_the_folder_is_replaced_by_an_identical_copy(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    before = fingerprint(path)

    copy = shutil.copytree(path, tmp_path / "iris/.1.tmp-copy")  # copy2: same names, sizes and mtimes
    path.rename(tmp_path / "old")
    Path(copy).rename(path)

    assert fingerprint(path) != before


def test_fingerprint_of_a_missing_folder_does_not_raise(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    before = fingerprint(path)

    shutil.rmtree(path)

    assert fingerprint(path) != before
    assert fingerprint(path) == fingerprint(path)


def test_fingerprint_records_a_broken_entry_without_raising(tmp_path: Path) -> None:
    path = version(tmp_path, "iris", "1")
    before = fingerprint(path)

    (path / "weights.bin").symlink_to(tmp_path / "gone")

    assert fingerprint(path) != before
