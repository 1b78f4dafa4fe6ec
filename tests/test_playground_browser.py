"""The playground page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
TRAIN, STOP, a broken layer, the 2-D heat-map, export then `ganforge generate`, and a shared link.

The server is the real app (``create_app``) under uvicorn in a thread. Setups are tiny (the 8x8 ``digits``,
small MLPs) so the whole file stays quick. Set ``GANFORGE_PLAYGROUND_SCREENSHOTS=docs/img`` to also write
the README's screenshots there (the images mode then trains the dcgan preset on MNIST, both for longer)."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

selenium = pytest.importorskip("selenium", reason="the browser tests need selenium (pip install -e '.[test]')")
pytest.importorskip("uvicorn", reason="the playground server needs uvicorn")
try:
    from ganforge.playground.app import create_app
except ImportError as e:  # the server package is not there (yet)
    pytest.skip(f"the playground server cannot be imported ({e})", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not (os.access(CHROMEDRIVER, os.X_OK) and CHROMIUM):
    pytest.skip("no chromium/chromedriver: `apt-get install -y chromium chromium-driver` (.ci/run does)",
                allow_module_level=True)

TOKEN = "browser-test-token"
SHOTS = os.environ.get("GANFORGE_PLAYGROUND_SCREENSHOTS")
NET = {"opt": "adam", "lr": 0.001, "betas": [0.5, 0.999], "momentum": 0.0}
TINY = {  # images mode on the 8x8 digits with two small MLPs: a step costs next to nothing
    "mode": "images", "data": {"source": "digits", "normalize": "[-1,1]"},
    "data2d": {"distribution": "ring", "points": None},
    "g_layers": [{"type": "fc", "out": 64}, {"type": "tanh"}, {"type": "reshape", "shape": [1, 8, 8]}],
    "d_layers": [{"type": "flatten"}, {"type": "fc", "out": 16}, {"type": "leakyrelu"}, {"type": "fc", "out": 1}],
    "z_dim": 8, "conditional": False, "g": NET, "d": NET,
    "batch_size": 8, "loss": "ns", "d_steps": 1, "g_steps": 1, "seed": 0,
}


def setup_hash(setup: dict) -> str:
    return "#setup=" + base64.urlsafe_b64encode(json.dumps(setup).encode()).decode().rstrip("=")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    runs = tmp_path_factory.mktemp("runs")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(runs, token=TOKEN), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the playground server did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    warm_up(base)
    yield {"base": base, "runs": runs}
    srv.should_exit = True
    thread.join(10)


def warm_up(base: str) -> None:
    """Make and drop one session first: the first one pays the process's one-time imports and data loads,
    which on a busy machine would otherwise eat the first test's waits."""
    import httpx

    headers = {"X-Ganforge-Token": TOKEN}
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        made = client.post("/api/sessions", json={"setup": TINY})
        assert made.status_code == 201, made.text
        assert client.delete(f"/api/sessions/{made.json()['id']}").status_code == 204


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except WebDriverException as e:
        pytest.skip(f"chromium does not start under chromedriver: {e.msg}")
    yield driver
    driver.quit()


def wait(driver, what, timeout=60.0, message=""):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: what(d))
    except TimeoutException:  # say what the page said
        shown = driver.execute_script("const m = document.getElementById('message'); return m && m.textContent")
        pytest.fail(f"{message or 'timed out'}; the page's message: {shown!r}")


def by_id(driver, id_):
    return driver.find_element(By.ID, id_)


def open_page(driver, server, setup: dict | None = None):
    driver.get("about:blank")  # a fresh page: a URL differing only in its hash would not reload it
    driver.get(f"{server['base']}/?token={TOKEN}" + (setup_hash(setup) if setup else ""))
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "1", message="page not ready")
    # the shape check has answered and found the setup good
    wait(driver, lambda d: by_id(d, "btn-train").is_enabled(), message="TRAIN stays disabled")


def step_count(driver) -> int:
    return int(by_id(driver, "step-count").text)


def click(driver, id_):
    by_id(driver, id_).click()


def server_state(driver) -> dict:
    """The session's latest update, as the server has it."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/api/sessions/' + document.body.dataset.session + '/state?token={TOKEN}')"
        ".then(r => r.json()).then(done, e => done({error: String(e)}));")


def stop_and_settle(driver):
    """STOP, then wait until the server says stopped and the page shows the server's last step."""
    click(driver, "btn-stop")
    wait(driver, lambda d: (s := server_state(d)).get("state") == "stopped" and step_count(d) == s["step"]
         and by_id(d, "run-state").text == "stopped", message="STOP did not stop")


def set_input(driver, element, value: str):
    """Type into an input the way a user does (the page listens to `input` events)."""
    element.clear()
    element.send_keys(value)


def save_shot(driver, tmp_path, name: str) -> Path:
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / name)
    return path


def test_train_changes_the_generated_images_shows_p_real_and_stop_stops(server, browser, tmp_path):
    open_page(browser, server, TINY)
    if SHOTS:  # a README picture: a preset that learns digits in a few thousand steps
        Select(by_id(browser, "preset")).select_by_value("dcgan")
        wait(browser, lambda d: by_id(d, "btn-train").is_enabled() and by_id(d, "data-source").get_attribute("value")
             == "mnist")
    click(browser, "btn-train")
    first = wait(browser, lambda d: by_id(d, "fake-images").get_attribute("src") or False,
                 message="no generated image arrived")
    assert first.startswith("data:image/png;base64,")
    wait(browser, lambda d: by_id(d, "fake-images").get_attribute("src") != first,
         message="the generated image did not change while training")
    labels = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#p-real .plabel"), message="no P(real) labels")
    texts = [e.get_attribute("textContent") for e in labels]
    assert all(t.startswith("real ") and t.endswith("%") and 0 <= float(t[5:-1]) <= 100 for t in texts), texts
    wait(browser, lambda d: step_count(d) > 1, message="the step count does not move")
    if SHOTS:
        wait(browser, lambda d: step_count(d) >= 1500, timeout=1200)
    stop_and_settle(browser)
    stopped_at = step_count(browser)
    time.sleep(1.0)  # several update intervals: a step counter still moving would show it
    assert step_count(browser) == stopped_at
    save_shot(browser, tmp_path, "playground-images.png")


def test_a_broken_layer_is_marked_with_its_message_and_train_is_disabled(server, browser):
    open_page(browser, server, TINY)
    reshape = browser.find_element(By.CSS_SELECTOR, '#g-layers li.layer[data-index="2"] input[data-param="shape"]')
    set_input(browser, reshape, "1, 8, 7")
    row = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#g-layers li.layer.layer-error"),
               message="no layer marked")
    assert [r.get_attribute("data-index") for r in row] == ["2"]
    msg = row[0].find_element(By.CSS_SELECTOR, ".layer-msg").text
    assert "reshape" in msg and "64" in msg and "56" in msg, msg
    assert by_id(browser, "message").text == msg
    assert not by_id(browser, "btn-train").is_enabled()
    set_input(browser, reshape, "1, 8, 8")
    wait(browser, lambda d: by_id(d, "btn-train").is_enabled(), message="TRAIN stays disabled after the fix")
    assert not browser.find_elements(By.CSS_SELECTOR, ".layer-error")
    assert by_id(browser, "message").text == ""


def heatmap_pixels(driver) -> str:
    return driver.execute_script("return document.getElementById('heatmap').toDataURL()")


def test_2d_mode_heatmap_changes_between_updates(server, browser, tmp_path):
    open_page(browser, server, TINY)
    blank = heatmap_pixels(browser)
    click(browser, "mode-2d")
    wait(browser, lambda d: by_id(d, "heatmap").is_displayed() and by_id(d, "btn-train").is_enabled(),
         message="2-D mode did not come up")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#d-layers li.layer")) >= 2
    click(browser, "btn-train")
    wait(browser, lambda d: heatmap_pixels(d) != blank, message="no heat-map drawn")
    first, step = heatmap_pixels(browser), step_count(browser)
    wait(browser, lambda d: step_count(d) > step and heatmap_pixels(d) != first,
         message="the heat-map did not change between updates")
    if SHOTS:
        wait(browser, lambda d: step_count(d) >= 1500, timeout=300)
    stop_and_settle(browser)
    # D's colours are in it, not only white: the heat-map is drawn, not just the points
    colours = browser.execute_script("""
        const c = document.getElementById('heatmap'), g = c.getContext('2d');
        const px = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
        for (let i = 0; i < px.length; i += 4 * 97) seen.add(px[i] + ',' + px[i + 1] + ',' + px[i + 2]);
        return seen.size;""")
    assert colours > 10
    save_shot(browser, tmp_path, "playground-2d.png")


def test_export_writes_a_run_that_ganforge_generate_loads(server, browser, tmp_path):
    from PIL import Image

    from ganforge.cli import main

    open_page(browser, server, TINY)
    click(browser, "btn-step")
    wait(browser, lambda d: step_count(d) >= 1, message="STEP did not step")
    set_input(browser, by_id(browser, "export-name"), "from-browser")
    click(browser, "btn-export")
    text = wait(browser, lambda d: (t := by_id(d, "export-result").text).startswith("written: ") and t,
                message="no export result")
    run = Path(text.removeprefix("written: "))
    assert run == server["runs"] / "from-browser"
    assert (run / "config.json").is_file()
    grid = tmp_path / "grid.png"
    assert main(["generate", str(run), "--n", "4", "--grid", str(grid)]) == 0
    with Image.open(grid) as im:
        assert im.format == "PNG" and min(im.size) >= 8


def test_a_shared_link_opens_the_same_setup(server, browser):
    open_page(browser, server, TINY)
    click(browser, "d-plus")  # GAN Lab's "+ layer": one more hidden block in D
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#d-layers li.layer")) == 6)
    set_input(browser, by_id(browser, "g-lr"), "0.0123")
    wait(browser, lambda d: by_id(d, "btn-train").is_enabled())
    link = by_id(browser, "share-link").get_attribute("href")
    assert "token" not in link and "#setup=" in link  # safe to pass on: the receiver has their own token
    browser.get("about:blank")
    base, frag = link.split("#", 1)
    browser.get(f"{base}?token={TOKEN}#{frag}")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#d-layers li.layer")) == 6
    assert float(by_id(browser, "g-lr").get_attribute("value")) == 0.0123
    assert by_id(browser, "data-source").get_attribute("value") == "digits"
    # a link pasted into the same tab changes only the hash: the page follows it too
    browser.execute_script("location.hash = arguments[0]", setup_hash(TINY))
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#d-layers li.layer")) == 4)
    assert float(by_id(browser, "g-lr").get_attribute("value")) == 0.001
    # without the token the page asks for it instead of failing call by call
    browser.get(link)
    wait(browser, lambda d: by_id(d, "token-form").is_displayed())
    assert "token" in by_id(browser, "message").text


def reveal(driver, element):
    """File inputs sit hidden inside their label buttons; Selenium types paths only into visible ones."""
    driver.execute_script("arguments[0].hidden = false", element)
    return element


def test_uploaded_images_become_the_data_and_a_bad_upload_says_why(server, browser, tmp_path):
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    zpath = tmp_path / "mine.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(zpath, "w") as z:
        for i in range(12):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(buf, "PNG")
            z.writestr(f"{'ab'[i % 2]}/{i}.png", buf.getvalue())
    open_page(browser, server, TINY)
    set_input(browser, by_id(browser, "upload-res"), "8")
    reveal(browser, by_id(browser, "upload-images")).send_keys(str(zpath))
    wait(browser, lambda d: by_id(d, "data-source").get_attribute("value").startswith("upload:"),
         message="the upload did not become the data")
    wait(browser, lambda d: "examples: 12" in by_id(d, "data-stats").text, message="no upload statistics")
    assert "input shape: [1, 8, 8]" in by_id(browser, "data-stats").text
    wait(browser, lambda d: by_id(d, "btn-train").is_enabled(), message="the uploaded 8x8 images do not fit TINY")
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    reveal(browser, by_id(browser, "upload-images")).send_keys(str(bad))
    text = wait(browser, lambda d: (t := by_id(d, "message").text) and "uploading" not in t and
                not t.startswith("uploaded") and t, message="no message for a bad upload")
    assert text.startswith("no usable images in the upload"), text
    assert by_id(browser, "data-source").get_attribute("value").startswith("upload:")  # the good upload stays


def test_the_explore_tab_renders_an_exported_run(server, browser):
    import httpx

    with httpx.Client(base_url=server["base"], headers={"X-Ganforge-Token": TOKEN}, timeout=120) as client:
        made = client.post("/api/sessions", json={"setup": {**TINY, "conditional": True}})
        assert made.status_code == 201, made.text
        sid = made.json()["id"]
        assert client.post(f"/api/sessions/{sid}/control", json={"action": "step"}).status_code == 200
        made = client.post(f"/api/sessions/{sid}/export", json={"name": "explore-me"})
        assert made.status_code == 200, made.text
        client.delete(f"/api/sessions/{sid}")
    from ganforge.edit.directions import find_directions
    from ganforge.generate.runs import load_run

    run = server["runs"] / "explore-me"
    _, G, _ = load_run(run)  # as `ganforge directions RUN --method pca --k 2` writes them
    find_directions(G, "pca", k=2, n=200).save(run / "directions" / "pca.npz")
    open_page(browser, server, TINY)
    click(browser, "tab-explore")
    wait(browser, lambda d: "explore-me" in [o.get_attribute("value") for o in
                                             d.find_elements(By.CSS_SELECTOR, "#ex-runs option")])
    Select(by_id(browser, "ex-runs")).select_by_value("explore-me")
    click(browser, "ex-load")
    first = wait(browser, lambda d: (s := by_id(d, "ex-image").get_attribute("src")) and s.startswith("data:") and s,
                 message="no sample rendered")
    assert first.startswith("data:image/png;base64,")
    set_input(browser, by_id(browser, "ex-seed"), "7")
    wait(browser, lambda d: by_id(d, "ex-image").get_attribute("src") not in (first, None),
         message="a new seed rendered the same image")
    seeded = by_id(browser, "ex-image").get_attribute("src")
    assert by_id(browser, "ex-class-row").is_displayed()  # the run is conditional: a class choice
    Select(by_id(browser, "ex-class")).select_by_value("3")
    wait(browser, lambda d: by_id(d, "ex-image").get_attribute("src") != seeded,
         message="choosing a class rendered the same image")
    assert by_id(browser, "ex-download").get_attribute("href") == by_id(browser, "ex-image").get_attribute("src")
    assert by_id(browser, "ex-download").get_attribute("download") == "ganforge-seed7.png"
    # the run's named directions: one slider each, labelled by name; moving one redraws
    named = browser.find_elements(By.CSS_SELECTOR, "#ex-named label")
    assert [lab.text.strip() for lab in named] == ["pca0", "pca1"]
    assert named[1].get_attribute("title") == "pca.npz: pca, z"
    classed = by_id(browser, "ex-image").get_attribute("src")
    slider = named[1].find_element(By.TAG_NAME, "input")
    browser.execute_script("arguments[0].value = 3; arguments[0].dispatchEvent(new Event('input'));", slider)
    wait(browser, lambda d: by_id(d, "ex-image").get_attribute("src") != classed,
         message="moving a named direction rendered the same image")


def test_points_drawn_with_the_mouse_or_pasted_become_the_2d_data(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, server, TINY)
    click(browser, "mode-2d")
    wait(browser, lambda d: by_id(d, "heatmap").is_displayed())
    click(browser, "btn-brush")
    ActionChains(browser).move_to_element_with_offset(by_id(browser, "heatmap"), -80, 0).click_and_hold() \
        .move_by_offset(40, 20).move_by_offset(40, 20).move_by_offset(40, -40).release().perform()
    wait(browser, lambda d: by_id(d, "dist").get_attribute("value") == "drawn")
    hash_setup = ("return JSON.parse(atob(location.hash.slice(7).replace(/-/g, '+').replace(/_/g, '/')))"
                  ".data2d")  # the hash is written at most twice a second: wait for the last of the drag
    wait(browser, lambda d: f"{len(d.execute_script(hash_setup)['points'])} points" == by_id(d, "drawn-count").text)
    drawn = browser.execute_script(hash_setup)
    assert drawn["distribution"] == "drawn" and len(drawn["points"]) >= 4
    assert by_id(browser, "drawn-count").text == f"{len(drawn['points'])} points"
    assert all(-10 < x < 10 and -10 < y < 10 for x, y in drawn["points"])
    wait(browser, lambda d: by_id(d, "btn-train").is_enabled(), message="the server refuses the drawn points")
    browser.execute_script("document.querySelector('#data-2d details').open = true")
    by_id(browser, "csv-text").send_keys("x,y\n0,0\n1,1\n0.5,-0.25\n")
    click(browser, "btn-csv-use")
    wait(browser, lambda d: by_id(d, "drawn-count").text == "3 points")
    wait(browser, lambda d: by_id(d, "btn-train").is_enabled())


def test_g_step_and_reset(server, browser):
    open_page(browser, server, TINY)
    click(browser, "btn-step-g")
    wait(browser, lambda d: step_count(d) == 1, message="G-STEP did not make one step")
    click(browser, "btn-step")
    wait(browser, lambda d: step_count(d) == 2, message="STEP did not make one more step")
    click(browser, "btn-reset")
    wait(browser, lambda d: step_count(d) == 0 and server_state(d).get("step") == 0, message="RESET kept the steps")


def test_a_browser_that_rations_url_writes_still_gets_every_edit(server, browser):
    # Safari throws after about 100 history.replaceState calls in 30 s; emulate that limit (at 20) and make
    # 200 edits in a burst, as a drag on the drawing plane does.
    open_page(browser, server, TINY)
    calls = browser.execute_script("""
        let n = 0;
        const real = history.replaceState.bind(history);
        history.replaceState = (...args) => { n += 1; if (n > 20) throw new DOMException("rate", "SecurityError");
                                              return real(...args); };
        window.__replaceStateCalls = () => n;
        const seed = document.getElementById("seed");
        for (let i = 1; i <= 200; i++) { seed.value = String(i); seed.dispatchEvent(new Event("input")); }
        return n;""")
    assert calls <= 2  # at most the first write of the burst, and none in the loop after it
    decode = "return JSON.parse(atob(arguments[0].split('#setup=')[1].replace(/-/g, '+').replace(/_/g, '/'))).seed"
    assert browser.execute_script(decode, by_id(browser, "share-link").get_attribute("href")) == 200
    wait(browser, lambda d: d.execute_script(decode, d.execute_script("return location.hash")) == 200,
         message="the URL missed the last edit")
    assert browser.execute_script("return window.__replaceStateCalls()") <= 3
    assert by_id(browser, "btn-train").is_enabled()


def test_leaving_the_page_ends_its_session_on_the_server(server, browser):
    import httpx

    open_page(browser, server, TINY)
    click(browser, "btn-step")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.session"), message="no session")
    sid = browser.execute_script("return document.body.dataset.session")
    state = f"{server['base']}/api/sessions/{sid}/state?token={TOKEN}"
    assert httpx.get(state).status_code == 200
    browser.get("about:blank")  # pagehide: the page's beacon closes the session
    deadline = time.monotonic() + 10
    while httpx.get(state).status_code != 404:
        assert time.monotonic() < deadline, "the session outlived its page"
        time.sleep(0.1)
