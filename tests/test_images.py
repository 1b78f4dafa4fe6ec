import pytest
import torch
from PIL import Image

from ganforge.storage.images import grid, save_gif, save_video, to_uint8


def test_to_uint8_maps_range():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 4)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 128, 255, 255]


def test_grid_layout():
    imgs = torch.ones(5, 3, 4, 4)
    g = grid(imgs, nrow=3, pad=1)
    assert g.size == (3 * 5 + 1, 2 * 5 + 1) and g.mode == "RGB"
    assert g.getpixel((1, 1)) == (255, 255, 255) and g.getpixel((0, 0)) == (32, 32, 32)
    assert grid(torch.ones(4, 1, 8, 8), upscale=2).size == (2 * (2 * 10 + 2),) * 2


def test_gif_frames_durations_and_loop(tmp_path):
    frames = [Image.new("L", (8, 8), v) for v in (0, 100, 200)]
    path = save_gif(frames, tmp_path / "a.gif", ms_per_frame=50, hold_last_ms=900)
    gif = Image.open(path)
    assert gif.n_frames == 3 and gif.info["loop"] == 0
    gif.seek(2)
    assert gif.info["duration"] == 900


def test_unsupported_video_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported video format '.avi'"):
        save_video([Image.new("L", (4, 4))], tmp_path / "x.avi")


def test_a_video_path_that_is_a_folder_is_named_as_one(tmp_path):
    from ganforge.errors import OutputPathError
    from ganforge.storage.images import check_video_path

    (tmp_path / "clips").mkdir()
    with pytest.raises(OutputPathError, match=r"clips is a folder; pass a file name for the output"):
        check_video_path(tmp_path / "clips")
    assert check_video_path(tmp_path / "clips" / "loop.gif") == tmp_path / "clips" / "loop.gif"
