"""`ganforge weights download/list` against a local HTTP server the tests start on 127.0.0.1.

The served files are tiny fakes built here, with the official files' key names; no other host is ever
contacted (a guard fails any test that tries).
"""
import dataclasses
import hashlib
import http.server
import io
import socket
import threading
import urllib.parse
import urllib.request

import pytest
import torch
from safetensors.torch import load_file, save_file

from ganforge.cli.app import main
from ganforge.errors import EvalError
from ganforge.metrics import inception, lpips, weight_files

SMALL_WIDTHS = (2, 2, 4, 4, 4)


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch):
    """Every place the loaders look lies under tmp_path, and only 127.0.0.1 and local files can be fetched."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    for env in (inception.ENV, lpips.ENV):
        monkeypatch.delenv(env, raising=False)
    real = urllib.request.urlopen

    def local_only(request, *args, **kwargs):
        url = urllib.parse.urlsplit(request.full_url if hasattr(request, "full_url") else request)
        assert url.scheme == "file" or url.hostname == "127.0.0.1", f"a test tried to reach {url.geturl()}"
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


class Server:
    """Serves ``files`` (path -> bytes); ``/cut/NAME`` announces NAME's full length but sends half of it."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                cut = self.path.startswith("/cut/")
                data = outer.files.get(self.path.removeprefix("/cut") if cut else self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def torch_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/pt_inception.pth"  # nothing listens there any more: connection refused


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    return err.strip()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


FAKE_INCEPTION = {"Conv2d_1a_3x3.conv.weight": torch.arange(6.0).view(2, 3, 1, 1)}


# ----------------------------------------------------------------- inception
def test_download_puts_inception_where_the_loader_looks(server, tmp_path, capsys):
    data = torch_bytes(FAKE_INCEPTION)
    url = server.add("/pt_inception.pth", data)
    with pytest.raises(EvalError, match="run `ganforge weights download inception` to fetch"):
        inception.find_weights()
    assert main(["weights", "download", "inception", "--url", url, "--sha256", sha(data)]) == 0
    target = tmp_path / "cache" / "pt_inception-2015-12-05-6726825d.pth"
    out = capsys.readouterr().out
    assert f"downloading {url}" in out and f"saved inception weights to {target} (SHA-256 checked)" in out
    assert inception.find_weights() == target and target.read_bytes() == data
    assert torch.equal(inception.load_state(target)["Conv2d_1a_3x3.conv.weight"], FAKE_INCEPTION[
        "Conv2d_1a_3x3.conv.weight"])
    assert leftovers(target.parent) == [target.name]  # no temporary file beside it

    # found now: a second call fetches nothing; `list` shows it present
    assert main(["weights", "download", "inception", "--url", url, "--sha256", sha(data)]) == 0
    assert capsys.readouterr().out.strip() == f"inception weights already at {target} (--force downloads them again)"
    assert server.hits == ["/pt_inception.pth"]
    assert main(["weights", "list"]) == 0
    assert f"  present {target}\n" in capsys.readouterr().out


def test_the_built_in_checksum_is_enforced_and_a_wrong_one_leaves_nothing(server, tmp_path, capsys):
    url = server.add("/pt_inception.pth", torch_bytes(FAKE_INCEPTION))
    cache = tmp_path / "cache"
    assert main(["weights", "download", "inception", "--url", url]) == 2  # the official SHA-256: not this file
    line = error_line(capsys)
    assert line.startswith(f"ganforge weights: error: {url} has SHA-256 ")
    assert "expected 6726825d0af5f729...: not the published file (damaged, or changed by the host), so nothing " \
           "was saved; download " in line
    assert leftovers(cache) == []  # neither the target nor the temporary file
    assert main(["weights", "download", "inception", "--url", url, "--sha256", "0" * 64]) == 2
    assert "expected 0000000000000000...:" in error_line(capsys) and leftovers(cache) == []


def test_no_network_is_one_line_naming_the_url_and_the_way_by_hand(capsys):
    url = closed_port_url()
    assert main(["weights", "download", "inception", "--url", url, "--timeout", "5"]) == 2
    assert error_line(capsys) == (
        f"ganforge weights: error: cannot reach {url} (Connection refused); download {url} by hand and pass its "
        "path: ganforge weights download inception --url PATH (or give it to eval with --inception-weights PATH)")


def test_a_truncated_download_is_refused_and_leaves_nothing(server, tmp_path, capsys):
    data = torch_bytes(FAKE_INCEPTION)
    server.add("/pt_inception.pth", data)
    url = server.url + "/cut/pt_inception.pth"
    assert main(["weights", "download", "inception", "--url", url, "--sha256", sha(data)]) == 2
    assert error_line(capsys).startswith(f"ganforge weights: error: download of {url} stopped after "
                                         f"{len(data) // 2:,} of {len(data):,} bytes: try again; download ")
    assert leftovers(tmp_path / "cache") == []


def test_http_errors_and_bad_options_are_one_line(server, capsys):
    missing = server.url + "/nothing.pth"
    assert main(["weights", "download", "inception", "--url", missing]) == 2
    assert error_line(capsys).startswith(f"ganforge weights: error: {missing} answered HTTP 404 Not Found; ")
    assert main(["weights", "download", "inception", "--url", missing, "--sha256", "xyz"]) == 2
    assert error_line(capsys) == ("ganforge weights: error: 'xyz' is not a SHA-256: give its 64 hex digits (or at "
                                  "least the first 8)")
    assert main(["weights", "download", "vgg16-lpips", "--url", missing]) == 2
    assert error_line(capsys) == ("ganforge weights: error: vgg16-lpips is made from 2 files: say which one --url "
                                  "is for, --url vgg16=... or --url lpips=...")
    assert server.hits == ["/nothing.pth"]


def test_env_var_and_dir_choose_the_target(server, tmp_path, monkeypatch, capsys):
    data = torch_bytes(FAKE_INCEPTION)
    url = server.add("/i.pth", data)
    named = tmp_path / "weights" / "my-inception.pth"
    monkeypatch.setenv(inception.ENV, str(named))
    assert main(["weights", "download", "inception", "--url", url, "--sha256", sha(data)[:8]]) == 0
    assert named.read_bytes() == data and inception.find_weights() == named
    capsys.readouterr()
    monkeypatch.delenv(inception.ENV)
    assert main(["weights", "download", "inception", "--url", url, "--sha256", sha(data), "--dir",
                 str(tmp_path / "elsewhere")]) == 0
    out = capsys.readouterr().out
    target = tmp_path / "elsewhere" / "pt_inception-2015-12-05-6726825d.pth"
    assert target.read_bytes() == data
    assert (f"note: the metrics do not look in {target.parent}: pass --inception-weights PATH or set "
            f"${inception.ENV}={target}") in out


# ----------------------------------------------------------------- vgg16 + lpips
def fake_vgg_files(widths=SMALL_WIDTHS):
    """A torchvision-style VGG16 state dict (with its classifier) and an lpips-style linear-layer one."""
    torch.manual_seed(0)
    model = lpips.LPIPS(lin=True, widths=widths)
    for p in model.parameters():
        p.data.normal_()
    state = model.state_dict()
    trunk = {k: v for k, v in state.items() if k.startswith("features.")} | {"classifier.0.weight": torch.ones(2, 2)}
    lin = {k: v for k, v in state.items() if k.startswith("lin")}
    return trunk, lin


def test_vgg16_lpips_is_merged_into_the_file_lpips_loads(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weight_files, "LPIPS_WIDTHS", SMALL_WIDTHS)
    trunk, lin = fake_vgg_files()
    trunk_data, lin_data = torch_bytes(trunk), torch_bytes(lin)
    trunk_url = server.add("/vgg16-397923af.pth", trunk_data)
    by_hand = tmp_path / "downloads" / "vgg.pth"  # the linear layers fetched by hand: a local path
    by_hand.parent.mkdir()
    by_hand.write_bytes(lin_data)
    assert lpips.default_lpips_path() is None
    assert main(["weights", "download", "vgg16-lpips", "--url", f"vgg16={trunk_url}", "--url", f"lpips={by_hand}",
                 "--sha256", f"vgg16={sha(trunk_data)}", "--sha256", f"lpips={sha(lin_data)}"]) == 0
    target = tmp_path / "cache" / "vgg16-lpips.safetensors"
    assert f"saved vgg16-lpips weights to {target}" in capsys.readouterr().out
    assert lpips.default_lpips_path() == target
    merged = load_file(str(target))
    assert set(merged) == set(trunk) - {"classifier.0.weight"} | set(lin)
    assert all(torch.equal(merged[k], v) for k, v in (trunk | lin).items() if k in merged)
    model = lpips.LPIPS(lin=True, widths=SMALL_WIDTHS)
    model.load_state_dict(merged)
    assert leftovers(target.parent) == [target.name]  # the fetched sources and the scratch folder are gone


def test_vgg16_lpips_with_a_wrong_part_checksum_leaves_nothing(server, tmp_path, capsys):
    trunk, lin = fake_vgg_files()
    trunk_url, lin_url = server.add("/vgg16.pth", torch_bytes(trunk)), server.add("/vgg.pth", torch_bytes(lin))
    assert main(["weights", "download", "vgg16-lpips", "--url", f"vgg16={trunk_url}", "--url", f"lpips={lin_url}",
                 "--sha256", f"vgg16={sha(torch_bytes(trunk))}"]) == 2  # lpips keeps the official SHA-256
    line = error_line(capsys)
    assert line.startswith(f"ganforge weights: error: {lin_url} has SHA-256 ")
    assert line.endswith("ganforge weights download vgg16-lpips --url lpips=PATH")
    assert leftovers(tmp_path / "cache") == []


def test_a_checked_vgg16_already_in_the_torch_hub_cache_is_not_fetched_again(server, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.setattr(weight_files, "LPIPS_WIDTHS", SMALL_WIDTHS)
    trunk, lin = fake_vgg_files()
    trunk_data, lin_data = torch_bytes(trunk), torch_bytes(lin)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"  # where torchvision leaves it
    hub.parent.mkdir(parents=True)
    hub.write_bytes(trunk_data)
    official = weight_files.VGG16_LPIPS
    vgg16, lpips_part = official.sources
    # stand-ins for the official sources: the same names, this test's files and checksums
    fake = dataclasses.replace(official, sources=(
        dataclasses.replace(vgg16, url=server.url + "/models/vgg16-397923af.pth", sha256=sha(trunk_data)),
        dataclasses.replace(lpips_part, url=server.add("/lpips/vgg.pth", lin_data), sha256=sha(lin_data))))
    monkeypatch.setitem(weight_files.FILES, "vgg16-lpips", fake)
    assert main(["weights", "download", "vgg16-lpips"]) == 0
    assert server.hits == ["/lpips/vgg.pth"]  # the trunk came from the hub cache
    assert set(load_file(str(tmp_path / "cache" / "vgg16-lpips.safetensors"))) == \
        set(trunk) - {"classifier.0.weight"} | set(lin)
    assert hub.read_bytes() == trunk_data  # left in place for torchvision
    hub.write_bytes(trunk_data[:-1] + b"!")  # a damaged copy is not used
    assert main(["weights", "download", "vgg16-lpips", "--force"]) == 2
    assert server.hits[1:] == ["/models/vgg16-397923af.pth"] and "HTTP 404" in error_line(capsys)


def test_merging_real_vgg16_shapes_gives_a_file_load_lpips_accepts(tmp_path):
    trunk, lin = fake_vgg_files(lpips.VGG16_WIDTHS)
    path = tmp_path / "vgg16-lpips.safetensors"
    save_file(weight_files.merge_lpips(trunk, lin), str(path))
    model = lpips.load_lpips(path)
    assert model.has_lin and torch.equal(model.lin4.model[1].weight, lin["lin4.model.1.weight"])
    with pytest.raises(EvalError, match=r"the downloaded files do not make VGG16 LPIPS weights \(.*lin0"):
        weight_files.merge_lpips(trunk, {})


# ----------------------------------------------------------------- messages that point here
def test_weights_not_found_messages_name_the_command(tmp_path, capsys):
    cache = tmp_path / "cache"
    with pytest.raises(EvalError) as e:
        inception.find_weights()
    assert str(e.value) == ("InceptionV3 weights not found: run `ganforge weights download inception` to fetch "
                            f"pt_inception-2015-12-05-6726825d.pth to {cache / inception.KNOWN_FILES[0]}, or pass "
                            "--inception-weights PATH (or set $GANFORGE_INCEPTION_WEIGHTS), or use --features digits")
    with pytest.raises(EvalError, match=r"not found: pass an existing .* or run `ganforge weights download "
                                        r"inception` to fetch it to "):
        inception.find_weights(tmp_path / "nope.pth")
    with pytest.raises(lpips.LPIPSWeightsError) as e:
        lpips.load_lpips(tmp_path / "nope.safetensors")
    assert str(e.value).startswith(f"VGG16 weights file {tmp_path / 'nope.safetensors'} not found: run `ganforge "
                                   f"weights download vgg16-lpips` to fetch them to "
                                   f"{cache / 'vgg16-lpips.safetensors'}, or ")
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"  missing {cache / inception.KNOWN_FILES[0]}\n" in out
    assert f"  missing {tmp_path / 'torch' / 'hub' / 'checkpoints' / inception.KNOWN_FILES[0]}\n" in out
    assert "  get it:  ganforge weights download inception\n" in out
    assert "  get it:  ganforge weights download vgg16-lpips\n" in out


def test_a_merged_safetensors_file_is_never_written_under_a_torch_suffix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(lpips.ENV, str(tmp_path / "vgg.pt"))
    assert main(["weights", "download", "vgg16-lpips"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("vgg.pt: the merged vgg16-lpips weights are a .safetensors file, which the loader reads "
                        "by its suffix: name a .safetensors path, or pass --dir DIR")
    assert list(tmp_path.iterdir()) == []


def test_a_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert main(["weights", "download", "inception", "--dir", str(afile)]) == 2
    assert capsys.readouterr().err.strip() == (f"ganforge weights: error: --dir {afile} is a file: pass a folder to "
                                               "save the inception weights in")
    assert afile.read_text() == "x"
