"""The one atomic writer: whole files or nothing, shareable permissions, no temp files left behind."""
import os
import stat

import pytest

from ganforge.storage.atomic import atomic_open, atomic_path, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "notes.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="midway"), atomic_open(target, "w") as f:
        f.write("half of the new")
        raise RuntimeError("midway")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.txt"]


def test_written_files_are_whole_and_readable_by_others(tmp_path):
    target = tmp_path / "a" / "b.txt"  # the folder is made
    atomic_write_text(target, "ünïcode\n")
    assert target.read_bytes() == "ünïcode\n".encode()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_atomic_path_keeps_the_suffix_and_renames_only_on_success(tmp_path):
    target = tmp_path / "clip.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and not target.exists()
        tmp.write_bytes(b"frames")
    assert target.read_bytes() == b"frames" and not tmp.exists()
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_bytes(b"broken")
        raise OSError("encoder died")
    assert target.read_bytes() == b"frames" and not tmp.exists()


def test_only_whole_file_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"), atomic_open(tmp_path / "x", "a"):
        pass


def test_a_target_that_cannot_be_written_is_named_not_its_temporary_file(tmp_path):
    from ganforge.errors import OutputPathError

    (tmp_path / "taken.png").mkdir()  # a folder where the file should go
    with pytest.raises(OutputPathError) as e:
        atomic_write_text(tmp_path / "taken.png", "x")
    assert str(e.value) == f"cannot write {tmp_path / 'taken.png'}: it is a folder; choose another path"
    (tmp_path / "file").write_text("x")  # a file where a folder should be
    with pytest.raises(OutputPathError, match=r"^cannot write .*file/out.txt: .*; choose another path$") as e:
        atomic_write_text(tmp_path / "file" / "out.txt", "x")
    assert sorted(p.name for p in (tmp_path / "taken.png").iterdir()) == []  # no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken.png"]
