"""The remove.bg API of ``catalyst-dl serve`` (issue 28): a real server with API keys, driven by a remove.bg client
nobody here wrote (PyPI ``remove-bg-api``) and by the README's curl commands; keys, rate limits, remove.bg-shaped
errors, and ``image_url`` fetching against a local HTTP server only."""
import base64
import hashlib
import io
import re
import socket
import subprocess
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from PIL import Image

from carseg.commands import catalyst_dl
from carseg.commands.serve import access_line
from carseg.errors import CarsegError
from carseg.inference.predictor import Predictor
from carseg.serve.app import Settings, create_app
from carseg.serve.keys import KeyStore, RateLimiter, digest
from conftest import red_car_photo
from serving import ROOT, running_server, serving_app
from test_serve import decoded, iou
from test_serve import encoded as png

remove_bg_api = pytest.importorskip("remove_bg_api", reason="remove-bg-api is not installed (requirements.txt)")

KEY = "test-key-0123456789abcdef"          # in the key file as it is
HASHED_KEY = "hashed-key-0123456789abcdef"  # in the key file only as its SHA-256
HEIGHT, WIDTH = 160, 240


@pytest.fixture(scope="module")
def car():
    photo, mask = red_car_photo(HEIGHT, WIDTH)
    return photo, mask > 0, png(photo)


@pytest.fixture(scope="module")
def server(oracle_model, tmp_path_factory):
    """The oracle model behind a server with keys (one plain, one hashed), 1 MB uploads, 1 megapixel."""
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# the test's keys\n{KEY}\n\nsha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}\n")
    with running_server(str(oracle_model), "--refine", "none", "--api-keys", str(keys), "--max-upload-mb", "1",
                        "--max-megapixels", "1") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    """remove-bg-api's client, unmodified, pointed at the server (its module-level API_URL)."""
    remove_bg_api.API_URL = f"{server}/v1.0"
    return remove_bg_api.RemoveBg(KEY)  # reads /v1.0/account on creation


def removebg(url: str, body: bytes, key: str = KEY, **data) -> httpx.Response:
    return httpx.post(f"{url}/v1.0/removebg", files={"image_file": ("car.png", body)}, data=data,
                      headers={"X-Api-Key": key}, timeout=60)


def api_remove(url: str, body: bytes, **params) -> httpx.Response:
    return httpx.post(f"{url}/api/remove", params=params, files={"file": ("car.png", body)},
                      headers={"X-Api-Key": KEY}, timeout=60)


@pytest.mark.parametrize("removebg_params, carseg_params", [
    ({}, {}),
    ({"crop": "true", "crop_margin": "10%"}, {"crop": "10%"}),
    ({"scale": "50%", "position": "0% 100%"}, {"scale": "0.5", "position": "0% 100%"}),
    ({"roi": "0% 0% 50% 100%"}, {"roi": "0% 0% 50% 100%"}),
    ({"add_shadow": "true"}, {"shadow": "true"}),
    ({"size": "preview"}, {"megapixels": "0.25"}),
])
def test_the_client_cuts_out_what_api_remove_cuts_out(client, server, removebg_params, carseg_params):
    """The same options through remove.bg's parameters and carseg's: the same alpha (IoU >= 0.999); size=preview
    on a 0.4 MP photo: at most 0.25 MP."""
    photo, mask = red_car_photo(500, 800) if "size" in removebg_params else red_car_photo(HEIGHT, WIDTH)
    ours = decoded(client.remove_bg_bytes(png(photo), data={"format": "png", **removebg_params}))
    theirs = decoded(api_remove(server, png(photo), **carseg_params).content)
    assert ours.shape == theirs.shape and ours.shape[2] == 4
    assert iou(ours[..., 3] > 127, theirs[..., 3] > 127) >= 0.999
    if not removebg_params:
        assert iou(ours[..., 3] > 127, mask > 0) > 0.95
    if "size" in removebg_params:
        assert ours.shape[0] * ours.shape[1] <= 250_000 and abs(ours.shape[1] / ours.shape[0] - 1.6) < 0.01


def test_the_client_with_its_defaults_base64_and_the_account(client, car):
    photo, truth, body = car
    cutout = decoded(client.remove_bg_bytes(body))  # format=auto, type=auto, size=preview: a PNG (transparent)
    assert cutout.shape == (HEIGHT, WIDTH, 4) and iou(cutout[..., 3] > 127, truth) > 0.95
    again = decoded(client.remove_bg_base64(base64.b64encode(body).decode()))
    assert (again == cutout).all()
    assert client.account.get_balance_dict() == {"total": 1_000_000, "subscription": 1_000_000, "payg": 0,
                                                 "enterprise": 0}  # no --rate-limit: carseg counts no credits


def test_a_wrong_or_missing_key_is_403_and_costs_nothing(server, client, car):
    before = httpx.get(f"{server}/health").json()
    assert before["auth"] is True
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode403):
        remove_bg_api.RemoveBg("not-a-key-0123456789abcdef")  # its first call, /v1.0/account, is refused
    changed = remove_bg_api.RemoveBg(KEY)
    changed.change_api_key("not-a-key-0123456789abcdef")
    with pytest.raises(remove_bg_api.Errors.ApiErrorCode403):
        changed.remove_bg_bytes(car[2])
    refused = removebg(server, car[2], key=HASHED_KEY[:-1])
    assert refused.status_code == 403 and refused.json() == {"errors": [{
        "title": "wrong API key: send a key this service knows (its --api-keys) in the X-Api-Key header",
        "code": "auth_failed"}]}
    missing = httpx.post(f"{server}/api/remove", content=car[2])
    assert missing.status_code == 403 and missing.json()["error"].startswith("no API key: send a key")
    assert httpx.get(f"{server}/v1.0/account").status_code == 403
    assert httpx.get(f"{server}/health").json()["requests"] == before["requests"]  # no forward pass ran
    assert removebg(server, car[2], key=HASHED_KEY).status_code == 200  # the hashed key's key


def test_answer_headers_json_and_formats(server, car):
    photo, truth, body = car
    rows, cols = np.nonzero(truth)
    plain = removebg(server, body)
    assert plain.headers["content-type"] == "image/png" and plain.headers["x-type"] == "car"
    assert (plain.headers["x-width"], plain.headers["x-height"], plain.headers["x-credits-charged"]) == (
        str(WIDTH), str(HEIGHT), "0")
    box = [int(plain.headers[f"x-foreground-{side}"]) for side in ("left", "top", "width", "height")]
    assert np.abs(np.subtract(box, [cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1])).max() <= 2
    answer = httpx.post(f"{server}/v1.0/removebg", files={"image_file": ("car.png", body)},
                        headers={"X-Api-Key": KEY, "Accept": "application/json"}).json()["data"]
    assert base64.b64decode(answer["result_b64"]) == plain.content
    assert [answer[f"foreground_{side}"] for side in ("left", "top", "width", "height")] == box
    white = removebg(server, body, bg_color="white")  # auto: no transparency left, so a JPEG
    assert white.headers["content-type"] == "image/jpeg" and decoded(white.content)[:10, :10].min() > 240
    named = decoded(removebg(server, body, bg_color="#0f0", format="png").content)
    assert named.shape == (HEIGHT, WIDTH, 3) and np.abs(named[:10, :10].astype(int) - (0, 255, 0)).max() <= 1
    assert decoded(removebg(server, body, format="jpg").content)[:10, :10].min() > 240  # remove.bg's: on white
    alpha = decoded(removebg(server, body, channels="alpha").content)
    assert alpha.shape == (HEIGHT, WIDTH) and iou(alpha > 127, truth) > 0.95
    picture = np.zeros((40, 40, 3), np.uint8)
    picture[:] = (200, 0, 200)
    backed = httpx.post(f"{server}/v1.0/removebg", headers={"X-Api-Key": KEY}, data={"format": "png"}, files={
        "image_file": ("car.png", body), "bg_image_file": ("bg.png", png(picture))})
    assert np.abs(decoded(backed.content)[:10, :10].astype(int) - (200, 0, 200)).max() <= 1
    with zipfile.ZipFile(io.BytesIO(removebg(server, body, format="zip").content)) as archive:
        assert archive.namelist() == ["color.jpg", "alpha.png"]
        assert decoded(archive.read("color.jpg")).shape == (HEIGHT, WIDTH, 3)
        assert iou(decoded(archive.read("alpha.png")) > 127, truth) > 0.95
    assert removebg(server, body, format="webp").headers["content-type"] == "image/webp"


def blue(height: int, width: int) -> bytes:
    photo = np.zeros((height, width, 3), np.uint8)
    photo[:] = (30, 60, 200)
    return png(photo)


@pytest.mark.parametrize("name, data, body, code, words", [
    ("not an image", {}, b"plain text, not a photo " * 20, "unsupported_image", "not an image"),
    ("empty image", {}, b"", "invalid_input", "image_file is empty: send the photo's bytes"),
    ("oversized upload", {}, bytes(1_200_000), "file_too_large", "--max-upload-mb"),
    ("too many pixels", {}, "big", "resolution_too_high", "too many pixels"),
    ("no car in it", {}, "blue", "unknown_foreground", "no car found in the photo"),
    ("person", {"type": "person"}, None, "unsupported_type", "type=person: carseg cuts out cars"),
    ("windows", {"semitransparency": "true"}, None, "unsupported_parameter", "semitransparency=true"),
    ("bad size", {"size": "huge"}, None, "invalid_parameter", "size=huge: choose one of preview"),
    ("bad colour", {"bg_color": "notacolour"}, None, "invalid_parameter", "bg_color=notacolour: give a hex colour"),
    ("see-through colour", {"bg_color": "ffffff80"}, None, "invalid_parameter", "see-through background"),
    ("uneven margins", {"crop": "true", "crop_margin": "10px 20px"}, None, "unsupported_parameter",
     "one margin for all four sides"),
    ("huge margin", {"crop": "true", "crop_margin": "900px"}, None, "invalid_parameter", "at most 50% or 500px"),
    ("tiny scale", {"scale": "5%"}, None, "invalid_parameter", "scale=5%: give original or 10% to 100%"),
    ("crop and scale", {"crop": "true", "scale": "50%"}, None, "unsupported_parameter", "crop=true with scale"),
    ("bad roi", {"roi": "0 0 10"}, None, "invalid_parameter", "roi=0 0 10: give the region's left, top"),
    ("unknown parameter", {"colour": "red"}, None, "unknown_parameter", "unknown parameter colour"),
    ("two images", {"image_url": "http://example.com/car.jpg"}, None, "missing_source", "give the image once"),
    ("two backgrounds", {"bg_color": "white", "bg_image_url": "http://example.com/bg.jpg"}, None,
     "invalid_parameter", "bg_color and bg_image_url: give one"),
    ("17000 px wide webp", {"format": "webp"}, "wide", "file_too_large", "takes at most 16383 pixels a side"),
])
def test_bad_input_is_a_remove_bg_error_and_the_server_goes_on(server, car, name, data, body, code, words):
    body = {None: car[2], "big": blue(1000, 1500), "blue": blue(HEIGHT, WIDTH), "wide": blue(5, 17000)}.get(
        body, body) if not isinstance(body, bytes) else body
    response = removebg(server, body, **data)
    assert response.status_code == 400, response.text
    (problem,) = response.json()["errors"]
    assert problem["code"] == code and words in problem["title"] and "\n" not in problem["title"]
    assert removebg(server, car[2]).status_code == 200


@pytest.mark.parametrize("request_kwargs, words", [
    ({"data": {"size": "auto"}}, "no image: send it as image_file"),
    ({"data": {"image_url": "http://169.254.169.254/latest/meta-data/"}}, "does not fetch URLs"),
    ({"data": {"image_file_b64": "%%% not base64"}}, "image_file_b64 is not base64"),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "the JSON body is not an object"),
    ({"content": b"raw bytes", "headers": {"Content-Type": "image/png"}}, "send the parameters as multipart"),
])
def test_requests_without_a_usable_image_are_400(server, request_kwargs, words):
    headers = {"X-Api-Key": KEY, **request_kwargs.pop("headers", {})}
    response = httpx.post(f"{server}/v1.0/removebg", headers=headers, **request_kwargs)
    assert response.status_code == 400 and words in response.json()["errors"][0]["title"], response.text


def test_json_body_with_base64(server, car):
    response = httpx.post(f"{server}/v1.0/removebg", headers={"X-Api-Key": KEY}, json={
        "image_file_b64": base64.b64encode(car[2]).decode(), "crop": True, "format": "png"})
    assert response.status_code == 200, response.text
    assert decoded(response.content).shape[0] < HEIGHT  # cropped to the car


def readme_commands() -> list:
    """The curl lines of the README's remove.bg block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"#### The remove\.bg API.*?```bash\n(.*?)```", text, re.S)[1]
    return [line for line in block.splitlines() if line.startswith("curl ")]


def test_the_readme_curl_commands_run(server, car, tmp_path):
    commands = readme_commands()
    assert len(commands) >= 5
    Image.fromarray(car[0]).save(tmp_path / "car.jpg", quality=95)
    for command in commands:
        subprocess.run(["bash", "-c", command.replace("http://127.0.0.1:8080", server)], cwd=tmp_path, check=True,
                       env={"CARSEG_KEY": KEY, "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=60)
    truth = car[1]
    assert iou(decoded((tmp_path / "car_no_bg.png").read_bytes())[..., 3] > 127, truth) > 0.95
    white = decoded((tmp_path / "car_white.jpg").read_bytes())
    assert white.ndim == 3 and white.shape[0] < HEIGHT and white[:3, :3].min() > 200  # cropped, on white
    with zipfile.ZipFile(tmp_path / "car.zip") as archive:
        assert archive.namelist() == ["color.jpg", "alpha.png"]
    import json
    assert base64.b64decode(json.loads((tmp_path / "car.json").read_text())["data"]["result_b64"])[:4] == b"\x89PNG"
    assert decoded((tmp_path / "car_api.jpg").read_bytes()).shape == (HEIGHT, WIDTH, 3)
    assert json.loads((tmp_path / "account.json").read_text())["data"]["attributes"]["api"]["sizes"] == "all"


@pytest.fixture(scope="module")
def oracle(oracle_model) -> Predictor:
    return Predictor(str(oracle_model), refine="none")


def test_over_the_rate_is_429_per_key(oracle, car):
    """--rate-limit 2/min: a key's third request in a minute is 429 with Retry-After; another key is not held."""
    other = "other-key-0123456789abcdef"
    app = create_app(oracle, Settings(rate_limit=2), KeyStore([digest(KEY), digest(other)]))
    with serving_app(app) as url:
        remove_bg_api.API_URL = f"{url}/v1.0"
        client = remove_bg_api.RemoveBg(KEY)  # /v1.0/account is not counted
        assert client.account.balance() == 2
        first = removebg(url, car[2])
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "1"
        client.remove_bg_bytes(car[2])
        with pytest.raises(remove_bg_api.Errors.ApiErrorCode429):
            client.remove_bg_bytes(car[2])
        over = api_remove(url, car[2])
        assert over.status_code == 429 and 50 <= int(over.headers["retry-after"]) <= 60
        assert over.json()["error"].startswith("over the rate limit of 2 requests a minute (--rate-limit)")
        assert removebg(url, car[2], key=other).status_code == 200


def test_rate_limiter_window_slides():
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.take(b"a") == (True, 0.0)
    now[0] = 10.0
    assert limiter.take(b"a") == (True, 0.0)
    now[0] = 20.0
    assert limiter.take(b"a") == (False, 40.0) and limiter.remaining(b"b") == 2
    now[0] = 60.5  # the first left the window
    assert limiter.take(b"a") == (True, 0.0) and limiter.remaining(b"a") == 0


def test_keys_from_file_and_environment(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"{KEY}\nsha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest().upper()}\n")
    keys = KeyStore.load(path, "env-key-0123456789abcdef, another-env-key-0123456789")
    assert len(keys) == 4
    assert keys.match(KEY) == digest(KEY) and keys.match(HASHED_KEY) == digest(HASHED_KEY)
    assert keys.match("another-env-key-0123456789") and keys.match(KEY + "x") is None and keys.match(None) is None
    assert KeyStore.load(None, "") is None
    path.write_text("short\n")
    with pytest.raises(CarsegError, match=r"key 1 has 5 characters, under 16: too easy to guess; make one with"):
        KeyStore.load(path)
    path.write_text("sha256:abc\n")
    with pytest.raises(CarsegError, match="a hashed key is sha256: and 64 hex digits"):
        KeyStore.load(path)


def test_serving_every_address_needs_keys_or_no_auth(call, tmp_path, monkeypatch):
    monkeypatch.delenv("CARSEG_API_KEYS", raising=False)
    ran = call(catalyst_dl.main, "serve", "--host", "0.0.0.0")
    assert ran.returncode == 1 and ran.stderr == (
        "catalyst-dl serve: error: --host 0.0.0.0: anyone who can reach it could use the service; give API keys "
        "(--api-keys FILE or CARSEG_API_KEYS), or --no-auth to serve without them\n")
    (tmp_path / "keys.txt").write_text(KEY + "\n")
    ran = call(catalyst_dl.main, "serve", "--no-auth", "--api-keys", tmp_path / "keys.txt")
    assert ran.returncode == 1 and "--no-auth with API keys (--api-keys or CARSEG_API_KEYS): give one" in ran.stderr
    ran = call(catalyst_dl.main, "serve", "--rate-limit", "fast")
    assert ran.returncode == 1 and "--rate-limit fast: give requests a minute per key, e.g. 60/min" in ran.stderr

    class Args:
        host, port, no_auth, api_keys = "0.0.0.0", 8080, True, None
    assert access_line(Args, None, "CARSEG_API_KEYS") == (
        "NO API KEYS (--no-auth): anyone who can reach 0.0.0.0:8080 can use the service")


class Photos(BaseHTTPRequestHandler):
    """A local photo host: /car.png, /same (redirect to /car.png), /other (redirect to localhost), /big."""

    body = b""
    hosts: list = []

    def do_GET(self):
        Photos.hosts.append(self.headers["Host"])
        port = self.server.server_address[1]
        if self.path in ("/same", "/other"):
            target = "/car.png" if self.path == "/same" else f"http://localhost:{port}/car.png"
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        body = Photos.body if self.path == "/car.png" else bytes(400_000)
        self.send_response(200 if self.path in ("/car.png", "/big") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def photo_host(car):
    Photos.body = car[2]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Photos)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def photos_test(monkeypatch):
    """``photos.test`` resolves to 127.0.0.1 (the name does not exist: connecting by name would fail); the number of
    lookups is counted."""
    import anyio

    real, lookups = anyio.getaddrinfo, []

    async def resolve(host, port, **kwargs):
        if host == "photos.test":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(host, port, **kwargs)

    monkeypatch.setattr(anyio, "getaddrinfo", resolve)
    return lookups


def fetch(url: str, image_url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1.0/removebg", data={"image_url": image_url, "format": "png"}, timeout=60)


def test_image_url_only_from_listed_hosts(oracle, car, photo_host):
    app = create_app(oracle, Settings(max_upload_mb=0.25, url_fetch=("127.0.0.1",)))
    base = f"http://127.0.0.1:{photo_host}"
    with serving_app(app) as url:
        cut = fetch(url, f"{base}/car.png")
        assert cut.status_code == 200 and iou(decoded(cut.content)[..., 3] > 127, car[1]) > 0.95
        assert fetch(url, f"{base}/same").status_code == 200  # a redirect on the same host is followed
        for image_url, code, words in [
            (f"http://localhost:{photo_host}/car.png", "invalid_image_url",
             "image_url: the service does not fetch from localhost (not in its --allow-url-fetch)"),
            (f"{base}/other", "invalid_image_url", "redirected to another host (localhost)"),
            (f"{base}/big", "file_too_large", "over the limit of 0.25 MB (--max-upload-mb)"),
            (f"{base}/missing", "failed_to_download", "the server answered 404"),
            ("file:///etc/passwd", "invalid_image_url", "file: URLs are not fetched"),
        ]:
            refused = fetch(url, image_url)
            assert refused.status_code == 400 and refused.json()["errors"] == [
                {"title": refused.json()["errors"][0]["title"], "code": code}], refused.text
            assert words in refused.json()["errors"][0]["title"]


def test_a_private_address_is_refused_unless_listed_and_the_checked_address_is_the_one_used(oracle, photo_host,
                                                                                             photos_test):
    """photos.test is listed but resolves to loopback: refused; with 127.0.0.0/8 listed too, fetched from the address
    that was checked (one lookup; the name itself resolves nowhere) with the name in the Host header."""
    with serving_app(create_app(oracle, Settings(url_fetch=("photos.test",)))) as url:
        refused = fetch(url, f"http://photos.test:{photo_host}/car.png")
        assert refused.status_code == 400 and "photos.test is a loopback, private or reserved address" in (
            refused.json()["errors"][0]["title"])
    Photos.hosts.clear()
    with serving_app(create_app(oracle, Settings(url_fetch=("photos.test", "127.0.0.0/8")))) as url:
        photos_test.clear()
        assert fetch(url, f"http://photos.test:{photo_host}/car.png").status_code == 200
        assert photos_test == ["photos.test"] and Photos.hosts == [f"photos.test:{photo_host}"]
