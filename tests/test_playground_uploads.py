"""POST /api/uploads: image zips and files become an ImageDataset, CSVs become 2-D points; every bad upload is a
one-line 400 (or 413 when too big), never a 500."""
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from ganforge.data.core import ImageDataset
from ganforge.playground import uploads
from ganforge.playground.security import Limits

TOKEN = "test-token"


def make_client(**limits):
    app = FastAPI()
    app.state.token, app.state.limits, app.state.uploads = TOKEN, Limits(**limits), {}
    app.include_router(uploads.make_router())
    return TestClient(app, headers={"X-Ganforge-Token": TOKEN}, raise_server_exceptions=False)


@pytest.fixture
def client():
    return make_client()


def png(size=(6, 6), mode="L", color=128, **save) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


def make_zip(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target.png")
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def post(client, files, kind="images", **fields):
    if isinstance(files, bytes):
        files = [("data.zip", files)]
    return client.post("/api/uploads", data={"kind": kind, **fields},
                       files=[("file", (name, data)) for name, data in files])


def error(r, status=400):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


# ----------------------------------------------------------------- images that load
def test_zip_of_class_folders_becomes_a_labelled_dataset(client):
    zipped = make_zip({"digits/zero/a.png": png(color=0), "digits/zero/b.png": png(color=10),
                       "digits/one/c.png": png(color=255), "digits/notes.txt": b"hello", "digits/.hidden.png": b"x",
                       "__MACOSX/digits/._a.png": b"junk"})
    r = post(client, zipped, resolution="8")
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "u1", "kind": "images", "stats": {
        "examples": 3, "shape": [1, 8, 8], "classes": ["one", "zero"], "skipped": 1,
        "skipped_reasons": {"not an image file": 1}}}
    data = client.app.state.uploads["u1"]
    assert isinstance(data, ImageDataset) and data.name == "upload:u1"
    assert data.labels.tolist() == [0, 1, 1]  # one/c, zero/a, zero/b in sorted order
    assert data.images[:, 0, 0, 0].tolist() == [255, 0, 10]
    assert post(client, zipped, resolution="8").json()["id"] == "u2"


def test_several_image_files_and_the_default_resolution_of_ganforge_train(client):
    r = post(client, [("a.png", png(color=50)), ("b.bmp", png(format="BMP", color=60)), ("c.txt", b"no")])
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert stats["examples"] == 2 and stats["shape"] == [1, 64, 64] and stats["classes"] == []
    assert stats["skipped_reasons"] == {"not an image file": 1}
    assert client.app.state.uploads["u1"].labels is None


def test_a_picked_folder_s_sub_folders_become_the_classes(client):
    # what the page's "upload folder" sends: each file named by its path inside the picked folder
    r = post(client, [("pets/cat/a.png", png(color=10)), ("pets/cat/b.png", png(color=20)),
                      ("pets/dog/c.png", png(color=30))], resolution="8")
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["classes"] == ["cat", "dog"]
    assert client.app.state.uploads["u1"].labels.tolist() == [0, 0, 1]


def test_color_modes_are_converted_as_ganforge_train_converts_them(client):
    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")  # really a 16-bit PNG
    r = post(client, [("g16.png", buf.getvalue())], resolution="4")
    assert r.status_code == 201, r.text
    assert client.app.state.uploads["u1"].images.unique().tolist() == [255]  # scaled, not clipped

    cmyk = png(mode="CMYK", color=(0, 0, 0, 0), format="JPEG", quality=100)  # no ink: white
    rgba = png(mode="RGBA", color=(200, 100, 50, 0))  # fully transparent: black, as train does
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pbuf = io.BytesIO()
    pal.save(pbuf, format="PNG")
    r = post(client, [("a_cmyk.jpg", cmyk), ("b_rgba.png", rgba), ("c_pal.png", pbuf.getvalue())], resolution="4")
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["shape"] == [3, 4, 4]
    imgs = client.app.state.uploads["u2"].images
    assert imgs[0].min() >= 250
    assert imgs[1].unique().tolist() == [0]
    assert imgs[2, :, 0, 0].tolist() == [10, 200, 30]


# ----------------------------------------------------------------- refused zips
@pytest.mark.parametrize("name", ["../evil.png", "ok/../../evil.png", "/etc/evil.png", "C:/evil.png",
                                  "..\\evil.png"])
def test_zip_members_that_climb_out_are_refused(client, name):
    msg = error(post(client, make_zip({"fine.png": png(), name: png()})))
    assert "points outside the upload" in msg and "relative paths" in msg
    assert client.app.state.uploads == {}


def test_names_in_messages_stay_on_one_line(client):
    msg = error(post(client, make_zip({"a\nb/../../x.png": png()})))
    assert msg == ("zip member 'a\\nb/../../x.png' of 'data.zip' points outside the upload (an absolute or '..' "
                   "path): re-create it with relative paths only")
    assert "\n" not in error(post(client, [("bad\nname.png", b"not a png")]))


def test_encrypted_members_are_refused(client):
    zipped = make_zip({"locked.png": png()})
    at = zipped.index(b"PK\x01\x02") + 8  # the central directory's flag bits; bit 0: encrypted
    zipped = zipped[:at] + bytes([zipped[at] | 1]) + zipped[at + 1:]
    assert error(post(client, zipped)) == (
        "zip member 'locked.png' of 'data.zip' is encrypted: zip the images without a password")


def test_a_file_name_that_climbs_out_is_refused(client):
    assert error(post(client, [("../a.png", png())])) == (
        "file '../a.png' points outside the upload (an absolute or '..' path): re-create it with relative paths only")


def test_symlink_members_are_refused(client):
    link = zipfile.ZipInfo("link.png")
    link.external_attr = (0o120777 << 16)  # S_IFLNK, as zip -y stores a link
    msg = error(post(client, make_zip({"fine.png": png(), "link.png": link})))
    assert msg == "zip member 'link.png' of 'data.zip' is a symbolic link: zip the files themselves (without zip -y)"


def test_zip_bombs_are_refused_before_unpacking():
    client = make_client(max_upload_bytes=1 << 20)  # unpacking may reach 4 MB
    bomb = make_zip({"zeros.png": bytes(8 << 20)})
    assert len(bomb) < 100_000
    msg = error(post(client, bomb))
    assert msg.startswith("zip member 'zeros.png' of 'data.zip' unpacks to 8 MB, over 200 times its packed size")
    # members too small for the ratio check, but too many of them
    many = make_zip({f"z{i}.png": bytes(1 << 20) for i in range(5)})
    assert error(post(client, many)).startswith("'data.zip' unpacks to 5 MB, over the 4 MB left of the limit")


def lie_about_size(zipped: bytes, name: bytes, size: int) -> bytes:
    """Patch the central directory so that member ``name`` declares ``size`` uncompressed bytes."""
    at = zipped.index(b"PK\x01\x02")
    while True:
        n = struct.unpack("<H", zipped[at + 28:at + 30])[0]
        if zipped[at + 46:at + 46 + n] == name:
            return zipped[:at + 24] + struct.pack("<I", size) + zipped[at + 28:]
        at = zipped.index(b"PK\x01\x02", at + 4)


def test_a_member_that_lies_about_its_size_is_read_no_further(client):
    big = png(size=(64, 64))
    zipped = lie_about_size(make_zip({"good.png": png(), "liar.png": big}), b"liar.png", 20)
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        assert zf.getinfo("liar.png").file_size == 20
    reasons = {}
    entries = uploads.zip_entries(zipped, "data.zip", Limits(), [10 << 20], reasons)
    assert [rel for rel, _ in entries] == ["good.png"] and reasons == {"unreadable": 1}


def test_too_many_members_or_images_are_refused():
    client = make_client(max_images=2)
    msg = error(post(client, make_zip({f"{i}.txt": b"x" for i in range(5)})))
    assert msg == "'data.zip' has 5 members, more than the 4 allowed: send at most 2 images"
    msg = error(post(client, make_zip({f"{i}.png": png() for i in range(3)})))
    assert msg == "the upload holds 3 images, more than the 2 allowed: send fewer"


def test_an_upload_without_images_is_refused(client):
    msg = error(post(client, make_zip({"a.txt": b"x", "b.csv": b"1,2"})))
    assert msg.startswith("no usable images in the upload (not an image file: 2): send .png")
    msg = error(post(client, [("a.png", b"not really a png"), ("b.jpg", b"\xff\xd8 broken")]))
    assert msg.startswith("no usable images in the upload (unreadable: 2)")
    assert error(post(client, [("x.zip", b"PK\x03\x04 nope")])) == (
        "'x.zip' is not a readable .zip archive (File is not a zip file): re-create it")


def test_non_images_with_an_image_name_are_skipped_and_counted(client):
    r = post(client, make_zip({"a.png": png(), "b.png": b"garbage", "c.jpg": png()[:30]}))
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["examples"] == 1 and r.json()["stats"]["skipped_reasons"] == {"unreadable": 2}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (valid CRC) with no pixel data: decoding it would
    allocate the whole canvas, reading the header does not."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_pixel_bombs_and_huge_dimensions_are_skipped_before_decoding():
    client = make_client(max_pixels=30_000)
    before = Image.MAX_IMAGE_PIXELS
    r = post(client, [("ok.png", png()), ("big.png", png(size=(200, 200))), ("bomb.png", png_header_only(10**5, 10**5)),
                      ("wide.png", png_header_only(20_000, 1))])
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["examples"] == 1
    assert r.json()["stats"]["skipped_reasons"] == {"too many pixels": 2, "too large dimensions": 1}
    assert before == Image.MAX_IMAGE_PIXELS  # PIL's process-wide limit is restored


def test_pil_s_limit_is_the_contract_s_max_pixels_while_decoding(monkeypatch):
    seen = []
    real = uploads.decode_all
    monkeypatch.setattr(uploads, "decode_all", lambda *a: seen.append(Image.MAX_IMAGE_PIXELS) or real(*a))
    assert post(make_client(max_pixels=5000), [("ok.png", png())]).status_code == 201
    assert seen == [5000]


# ----------------------------------------------------------------- size and form
def test_too_big_uploads_are_413():
    client = make_client(max_upload_bytes=2000)
    msg = error(post(client, [("a.png", png(size=(64, 64), mode="RGB", color=(1, 2, 3), compress_level=0))]), 413)
    assert msg == "the upload is larger than the 2000 bytes limit: send fewer or smaller files"


def test_the_body_is_refused_while_it_streams_in():
    body = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + bytes(10_000)
    reader = uploads.MultipartReader("multipart/form-data; boundary=XX", 4096, 10)
    fed = 0
    with pytest.raises(uploads.UploadRefused) as e:
        for i in range(0, len(body), 1000):
            reader.write(body[i:i + 1000])
            fed += 1000
    assert e.value.status == 413 and fed == 4000  # the fifth chunk crossed the limit: nothing more was read
    assert sum(len(p.data.getvalue()) for p in reader.parts) < 4096


def test_chunked_upload_without_length_is_still_limited():
    client = make_client(max_upload_bytes=3000)
    head = b"--XX\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nimages\r\n"

    def body():
        yield head
        for _ in range(10):
            yield bytes(1000)

    r = client.post("/api/uploads", content=body(), headers={"content-type": "multipart/form-data; boundary=XX"})
    assert error(r, 413).startswith("the upload is larger than the 3000 bytes limit")


@pytest.mark.parametrize("fields, message", [
    ({"kind": "videos"}, "form field 'kind' must be images or points, got 'videos'"),
    ({"kind": "images", "resolution": "4096"}, "form field 'resolution' must be a whole number from 4 to 128, "
                                               "got '4096'"),
    ({"kind": "images", "channels": "2"}, "form field 'channels' must be 1 (gray), 3 (RGB) or auto, got '2'"),
    ({"kind": "images", "fit": "zoom"}, "form field 'fit' must be one of center-crop, pad, stretch, got 'zoom'"),
])
def test_bad_form_fields(client, fields, message):
    r = client.post("/api/uploads", data=fields, files=[("file", ("a.png", png()))])
    assert error(r) == message


def test_not_multipart_and_no_token(client):
    assert error(client.post("/api/uploads", json={"kind": "images"})).startswith(
        "send the upload as multipart/form-data")
    r = TestClient(client.app).post("/api/uploads", data={"kind": "points"}, files=[("file", ("p.csv", b"1,2"))])
    assert r.status_code == 403
    assert client.app.state.uploads == {}


# ----------------------------------------------------------------- points
def test_points_csv_is_normalised_into_the_unit_square(client):
    r = post(client, [("p.csv", b"x,y\n0,0\n4, 2\n\n# a comment\n2 1\n")], kind="points")
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "u1", "kind": "points", "stats": {"examples": 3, "center": [2.0, 1.0], "scale": 2.0}}
    pts = client.app.state.uploads["u1"]
    assert pts.dtype == torch.float32 and pts.tolist() == [[-1.0, -0.5], [1.0, 0.5], [0.0, 0.0]]


@pytest.mark.parametrize("text, message", [
    (b"1,2\n3,x\n", "line 2 of the points file ('3,x') is not two numbers: write x,y with plain numbers"),
    (b"x,y\n1,2\n1,2,3\n", "line 3 of the points file ('1,2,3') has 3 values: write two numbers x,y per line"),
    (b"1,2\n\n2,nan\n", "line 3 of the points file ('2,nan') is not finite: use numbers, not inf or nan"),
    (b"1,2\n1e999 3\n", "line 2 of the points file ('1e999 3') is not finite: use numbers, not inf or nan"),
    (b"1,abc\n2,3\n", "line 1 of the points file ('1,abc') is not two numbers: write x,y with plain numbers"),
    (b"x,y\n1,2\n", "the points file has 1 point: send at least 2 lines of x,y"),
    (b"1,1\n1,1\n", "all points are the same: send points that spread out"),
    (b"\xff\xfe1,2", "the points file is not UTF-8 text: send a CSV of x,y numbers, one point a line"),
    ("\n".join(f"{i},{i}" for i in range(6)).encode(), "the points file has more than 5 points: send fewer"),
])
def test_bad_points_files_name_the_line(text, message):
    assert error(post(make_client(max_points=5), [("p.csv", text)], kind="points")) == message


def test_points_come_as_one_file(client):
    msg = error(post(client, [("a.csv", b"1,2\n3,4"), ("b.csv", b"1,2\n3,4")], kind="points"))
    assert msg == "points come as one CSV file in field 'file', got 2 files"
