"""``catalyst-dl serve``: a real server process, a real HTTP client; answers, options, bad input, batching."""
import asyncio
import http.client
import io
import re
import socket
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from PIL import ExifTags, Image

from carseg.commands import catalyst_dl
from carseg.inference.predictor import Predictor
from carseg.serve import app as service
from carseg.serve.app import Settings, create_app
from carseg.serve.batcher import Batcher
from carseg.data.images import ENCODE_PARAMS
from carseg.serve.photos import ServeError, decode
from conftest import red_car_photo
from profiles import display_p3
from test_phone_photos import LATITUDE, MAKE, phone_exif
from serving import running_server, serving_app

HEIGHT, WIDTH = 160, 240
P3 = display_p3()


def encoded(image: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **params)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def client(oracle_model):
    """The oracle model (red = car) behind a server with small limits: 0.25 MB uploads, 0.1 megapixels."""
    with running_server(str(oracle_model), "--refine", "none", "--max-upload-mb", "0.25", "--max-megapixels", "0.1",
                        "--max-wait-ms", "100") as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            yield http


@pytest.fixture(scope="module")
def car():
    photo, mask = red_car_photo(HEIGHT, WIDTH)
    return photo, mask > 0, encoded(photo)


def remove(client: httpx.Client, body: bytes, **params) -> httpx.Response:
    return client.post("/api/remove", params=params, files={"file": ("car.png", body)})


def test_cut_out_has_the_photo_size_and_the_car(client, car):
    photo, truth, body = car
    for response in (remove(client, body), client.post("/api/remove", content=body)):  # multipart and raw body
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        cutout = decoded(response.content)
        assert cutout.shape == (HEIGHT, WIDTH, 4)
        assert iou(cutout[..., 3] > 127, truth) > 0.95
        assert np.abs(cutout[truth][:, :3].astype(int) - photo[truth]).mean() < 8  # the car's own colours
    assert 'filename="car.png"' in remove(client, body).headers["content-disposition"]
    assert 0.5 < float(remove(client, body).headers["x-confidence"]) <= 1  # a clear car: a confident cut-out


def test_options_are_honoured(client, car):
    photo, truth, body = car
    far = np.zeros_like(truth)
    far[:10, :10] = True  # a corner, far from the car
    white = decoded(remove(client, body, background="white", format="jpg").content)
    assert white.shape == (HEIGHT, WIDTH, 3) and white[far].min() > 240
    colour = decoded(remove(client, body, background="10,200,30", format="webp").content)
    assert np.abs(colour[far].astype(int) - (10, 200, 30)).max() < 8
    mask = decoded(remove(client, body, mask="true").content)
    assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= {0, 255} and iou(mask > 0, truth) > 0.95
    hard = decoded(remove(client, body, alpha="hard").content)
    assert set(np.unique(hard[..., 3])) == {0, 255}
    rows, cols = np.nonzero(truth)
    cropped = decoded(remove(client, body, crop="0").content)
    assert abs(cropped.shape[0] - np.ptp(rows) - 1) <= 4 and abs(cropped.shape[1] - np.ptp(cols) - 1) <= 4
    assert decoded(remove(client, body, canvas="100x80").content).shape == (80, 100, 4)
    below = (slice(rows.max() + 1, rows.max() + 4), slice(cols.min() + 20, cols.max() - 20))
    second = photo.copy()
    second[5:25, 5:45] = (220, 20, 20)  # a small car in the corner: left out of the photo's subject, kept with all
    assert decoded(remove(client, encoded(second)).content)[15, 25, 3] == 0
    assert decoded(remove(client, encoded(second), subject="all").content)[15, 25, 3] == 255
    shadowed = decoded(remove(client, body, shadow="true", shadow_strength="0.8").content)
    assert shadowed[below][..., 3].mean() > 10 > decoded(remove(client, body).content)[below][..., 3].mean()
    assert decoded(remove(client, body, threshold="0.999999", mask="true").content).max() == 0  # the oracle's p < 1


def test_background_picture_and_instances(client, car):
    photo, truth, body = car
    picture = np.zeros((50, 50, 3), np.uint8)
    picture[:] = (0, 255, 0)
    files = {"file": ("car.png", body), "background": ("green.png", encoded(picture))}
    answer = decoded(client.post("/api/remove", files=files).content)
    assert answer.shape == (HEIGHT, WIDTH, 3) and (answer[~truth] == (0, 255, 0)).all(axis=-1).mean() > 0.95
    two = np.concatenate([photo, photo], axis=1)  # two cars side by side
    response = remove(client, encoded(two), instances="true")
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["car_1.png", "car_2.png"]
        assert decoded(archive.read("car_1.png")).shape == (HEIGHT, 2 * WIDTH, 4)


def test_phone_photos_keep_their_profile_and_lose_their_location(client, car):
    """A HEIC or AVIF in Display P3 with GPS in its EXIF: the answer carries the profile; its EXIF only with
    keep_metadata, the location only with keep_location too; a background colour is meant in sRGB."""
    photo, truth, _ = car
    for fmt, answer in (("HEIF", "png"), ("AVIF", "avif")):
        body = encoded(photo, fmt, icc_profile=P3, exif=phone_exif().tobytes(), quality=95)
        plain, kept, located = (remove(client, body, format=answer, **params) for params in (
            {}, {"keep_metadata": "true"}, {"keep_metadata": "true", "keep_location": "true"}))
        for response in (plain, kept, located):
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == f"image/{answer}"
            with Image.open(io.BytesIO(response.content)) as cut:
                assert cut.info["icc_profile"] == P3 and iou(np.asarray(cut)[..., 3] > 127, truth) > 0.95
        assert dict(Image.open(io.BytesIO(plain.content)).getexif()) == {}
        exif = Image.open(io.BytesIO(kept.content)).getexif()
        assert exif[ExifTags.Base.Make] == MAKE and ExifTags.IFD.GPSInfo not in exif
        gps = Image.open(io.BytesIO(located.content)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert gps[ExifTags.GPS.GPSLatitude] == LATITUDE
    green = decoded(remove(client, encoded(photo, "JPEG", icc_profile=P3, quality=95), background="0,255,0",
                           format="jpg").content)
    assert np.abs(green[:10, :10].astype(int) - (117, 251, 76)).max() <= 3  # sRGB's green in Display P3 (JPEG: +-3)


def truncated_jpeg(photo: np.ndarray) -> bytes:
    data = encoded(photo, "JPEG", quality=90)
    return data[: len(data) // 2]


@pytest.mark.parametrize("name, body, params, status, words", [
    ("not an image", b"plain text, not a photo " * 20, {}, 415, "not an image"),
    ("empty body", b"", {}, 400, "empty upload"),
    ("truncated JPEG", None, {}, 400, "truncated JPEG"),
    ("oversized upload", bytes(300_000), {}, 413, "--max-upload-mb"),
    ("too many pixels", "big", {}, 413, "too many pixels"),
    ("unknown format", None, {"format": "gif"}, 422, "format=gif"),
    ("unknown alpha", None, {"alpha": "fuzzy"}, 422, "alpha=fuzzy"),
    ("bad background", None, {"background": "/etc/passwd"}, 422, "R,G,B"),
    ("bad crop", None, {"crop": "-3"}, 422, "crop=-3"),
    ("unknown option", None, {"colour": "red"}, 422, "colour: unknown option"),
    ("jpg without background", None, {"format": "jpg"}, 422, "no transparency"),
    ("location without metadata", None, {"keep_location": "true"}, 422, "keep_location=true: the location is kept"),
    ("truncated HEIC", "heic", {}, 400, "could not be decoded; send a JPEG, PNG, WebP, HEIC, AVIF"),
])
def test_bad_input_is_one_json_error_and_the_server_goes_on(client, car, name, body, params, status, words):
    photo, _, good = car
    if body is None:
        body = truncated_jpeg(photo) if name == "truncated JPEG" else good
    elif body == "heic":
        body = encoded(photo, "HEIF")[:-300]  # the header whole, the picture cut short
    elif body == "big":
        body = encoded(np.zeros((400, 300, 3), np.uint8))  # 0.12 megapixels, small file
    response = client.post("/api/remove", params=params, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert words in message and "\n" not in message
    if params.get("format") == "gif":
        assert response.json()["allowed"] == {"format": list(ENCODE_PARAMS)}
    assert remove(client, good).status_code == 200


def test_streamed_oversized_upload_is_stopped(client, car):
    chunks = (bytes(65536) for _ in range(8))  # no Content-Length: counted as it arrives
    response = client.post("/api/remove", content=chunks)
    assert response.status_code == 413 and "--max-upload-mb" in response.json()["error"]
    assert remove(client, car[2]).status_code == 200


def test_concurrent_requests_share_forward_passes(client, car):
    before = client.get("/health").json()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: remove(client, car[2]), range(8)))
    assert all(r.status_code == 200 for r in responses)
    assert max(int(r.headers["x-batch-size"]) for r in responses) > 1
    after = client.get("/health").json()
    assert after["requests"] - before["requests"] == 8 and after["batches"] - before["batches"] < 8


def test_health_openapi_and_pages(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["settings"]["max_megapixels"] == 0.1
    spec = client.get("/openapi.json").json()
    names = {p["name"] for p in spec["paths"]["/api/remove"]["post"]["parameters"]}
    assert {"background", "alpha", "format", "mask", "crop", "canvas", "shadow", "instances"} <= names
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    page = client.get("/")
    assert page.status_code == 200 and "/api/remove" in page.text


def test_request_timeout_is_a_json_504_and_the_server_goes_on(oracle_model, car):
    with running_server(str(oracle_model), "--timeout", "0.001") as url, httpx.Client(base_url=url, timeout=60) as http:
        response = remove(http, car[2])
        assert response.status_code == 504 and "--timeout" in response.json()["error"]
        assert http.get("/health").json()["status"] == "ok"


def cars_photo(height: int, width: int, count: int, size: int = 12) -> np.ndarray:
    """``count`` red squares ('cars') of ``size`` px spread in a grid on blue, far enough apart to stay apart."""
    photo = np.zeros((height, width, 3), np.uint8)
    photo[:] = (30, 60, 200)
    columns = int(np.ceil(np.sqrt(count * width / height)))
    step_x, step_y = width // columns, height // int(np.ceil(count / columns))
    for index in range(count):
        y, x = (index // columns) * step_y + step_y // 4, (index % columns) * step_x + step_x // 4
        photo[y: y + size, x: x + size] = (220, 20, 20)
    return photo


@pytest.mark.parametrize("params, body, words", [
    ({"crop": "3000%"}, None, "crop=3000%: the cut-out of a 240x160 photo could grow to 14640x9760"),
    ({"crop": "400"}, None, "crop=400: the cut-out of a 240x160 photo could grow to 1040x960"),
    ({"canvas": "20000x20000"}, None, "canvas=20000x20000: 400.0 megapixels, over the limit of 0.1 (--max-megapixels)"),
    ({"canvas": "20000x20000", "crop": "0"}, None, "canvas=20000x20000"),
    ({"format": "webp"}, (5, 17000), "format=webp: takes at most 16383 pixels a side, the cut-out could be 17000x5"),
])
def test_an_answer_over_the_limits_is_refused_before_any_work(client, car, params, body, words):
    """Crop margins and canvases that would grow the answer past --max-megapixels (0.1 here), or a picture wider
    than its format takes: 413 from the photo's header, before the forward pass (the batcher ran nothing)."""
    body = car[2] if body is None else encoded(np.zeros((*body, 3), np.uint8))
    before = client.get("/health").json()["requests"]
    response = remove(client, body, **params)
    assert response.status_code == 413, response.text
    assert words in response.json()["error"] and response.elapsed.total_seconds() < 2
    assert client.get("/health").json()["requests"] == before
    assert remove(client, body, **{**params, "format": "png", "crop": "5%", "canvas": "300x200"}).status_code == 200


def test_instances_are_bounded_in_number_and_in_pixels(client):
    """instances=true with instances_min_area=0 on a photo of specks: 413 naming --max-instances, before any
    picture is made; three cars at full size (3 x 0.09 MP) pass twice --max-megapixels (0.2 MP): 413 saying that
    crop cuts each car out in its own box, and with crop=2 three small pictures come back."""
    specks = remove(client, encoded(cars_photo(200, 300, 60, size=6)), instances="true", instances_min_area="0")
    assert specks.status_code == 413, specks.text
    assert re.fullmatch(r"60 cars of at least instances_min_area=0\.0 of the photo, over --max-instances 20; raise "
                        r"instances_min_area or send a photo with fewer cars", specks.json()["error"])
    three = encoded(cars_photo(300, 300, 3, size=40))
    full = remove(client, three, instances="true")
    assert full.status_code == 413 and full.json()["error"] == (
        "3 cut-outs holding 0.3 megapixels, over the limit of 0.2 (2 x --max-megapixels); crop=5% cuts each car out "
        "in its own box")
    cropped = remove(client, three, instances="true", crop="2")
    with zipfile.ZipFile(io.BytesIO(cropped.content)) as archive:
        shapes = [decoded(archive.read(name)).shape for name in archive.namelist()]
    assert len(shapes) == 3 and all(abs(h - 44) <= 4 and abs(w - 44) <= 4 for h, w, _ in shapes)  # 40 + 2 x 2 px


def test_huge_query_strings_and_values_are_refused_without_echo(client, car):
    """A 100 KB query string: 414 in a short answer; a 1000-character bad value: 422 quoting its first 40."""
    url = urlsplit(str(client.base_url))
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("POST", "/api/remove?crop=" + "x" * 100_000, body=car[2])
    response = connection.getresponse()
    body = response.read()
    assert response.status == 414 and len(body) < 200 and response.getheader("x-request-id")
    assert b"over the limit of 2048" in body
    long = remove(client, car[2], crop="y" * 1000)
    assert long.status_code == 422 and len(long.json()["error"]) < 250
    assert "crop=" + "y" * 40 + "... (1000 characters): give a margin" in long.json()["error"]


def test_every_answer_carries_a_request_id(client, car):
    answers = [remove(client, car[2]), remove(client, b""), remove(client, car[2], alpha="fuzzy"),
               client.get("/health")]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids) and len(set(ids)) == 4


def test_a_decoder_failure_is_a_client_error(monkeypatch):
    def refuses(data, reduction=1):
        raise cv2.error("OpenCV(5.0.0) loadsave.cpp:1701: error: (-215:Assertion failed) in function 'imdecode_'")

    monkeypatch.setattr("carseg.serve.photos.decode_photo", refuses)
    with pytest.raises(ServeError) as refused:
        decode(b"anything")
    assert refused.value.status == 400 and str(refused.value) == (
        "corrupt or unsupported image: it could not be decoded; send a JPEG, PNG, WebP, HEIC, AVIF, BMP or TIFF photo")


@pytest.fixture
def oracle(oracle_model) -> Predictor:
    return Predictor(str(oracle_model), refine="none")


def test_an_internal_error_is_logged_and_answered_with_its_id_only(oracle, car, monkeypatch, caplog):
    """A true 500: the traceback goes to the server's log under the request id, the answer is one sentence with
    that id and nothing of the exception, and the same connection serves the next request."""
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (160,240,4) (3,)")

    with serving_app(create_app(oracle)) as url:
        address = urlsplit(url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        with monkeypatch.context() as patch:
            patch.setattr(service, "cut_out", broken)
            connection.request("POST", "/api/remove", body=car[2])
            response = connection.getresponse()
            answer = response.read().decode()
        local = connection.sock.getsockname()
        request_id = response.getheader("x-request-id")
        assert response.status == 500 and "broadcast" not in answer and "ValueError" not in answer
        assert f"internal error, logged as request {request_id}; the service goes on" in answer
        logged = [record for record in caplog.records if request_id in record.getMessage()]
        assert logged and "broadcast together" in str(logged[0].exc_info[1])
        connection.request("POST", "/api/remove", body=car[2])
        again = connection.getresponse()
        again.read()
        assert again.status == 200 and connection.sock.getsockname() == local  # keep-alive kept


def test_a_timed_out_request_stops_and_the_next_is_answered_at_once(oracle, car, monkeypatch):
    """--timeout 0.6 s, one codec thread, and a slow stand-in encoder (0.25 s a picture): a 12-car instances=true
    request gets its 504 at the deadline and stops making pictures there, so a good request sent next is answered
    in its own time, not after the 2.4 s of pictures the timed-out one had left."""
    encoded_shapes = []

    def slow_encode(picture: np.ndarray, fmt: str, *metadata) -> bytes:
        time.sleep(0.25)
        encoded_shapes.append(picture.shape)
        return encoded(picture)

    monkeypatch.setattr(service, "encode", slow_encode)
    app = create_app(oracle, Settings(timeout_s=0.6, workers=1, max_batch=1))
    with serving_app(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        slow = remove(http, encoded(cars_photo(200, 300, 12, size=30)), instances="true")
        assert slow.status_code == 504 and "--timeout" in slow.json()["error"]
        started = time.perf_counter()
        good = remove(http, car[2])
        assert good.status_code == 200 and time.perf_counter() - started < 1.5
        assert len(encoded_shapes) <= 5  # at most 4 of the 12 pictures, and the good request's one


def test_batcher_drops_a_cancelled_request_before_its_forward_pass():
    forwarded = []

    def forward(items):
        forwarded.append(list(items))
        time.sleep(0.2)
        return items

    async def requests() -> int:
        async with Batcher(forward, max_batch=1, max_wait=0) as batcher:
            first = asyncio.create_task(batcher("first"))
            await asyncio.sleep(0.05)  # first's forward pass runs, the next two queue behind it
            timed_out, waiting = asyncio.create_task(batcher("timed out")), asyncio.create_task(batcher("waiting"))
            await asyncio.sleep(0.05)
            timed_out.cancel()
            assert await first == ("first", 1) and await waiting == ("waiting", 1)
            return batcher.dropped

    assert asyncio.run(requests()) == 1 and forwarded == [["first"], ["waiting"]]


def test_slow_headers_are_cut_off(oracle):
    """A client sending its headers a byte at a time loses the connection at --header-timeout (0.5 s here)."""
    with serving_app(create_app(oracle), header_timeout=0.5) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            started = time.perf_counter()
            assert slow.recv(100) == b""  # closed, no answer
            assert 0.3 < time.perf_counter() - started < 5
        assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_bad_port_is_one_line(call, port):
    ran = call(catalyst_dl.main, "serve", "--port", port)
    assert ran.returncode == 1
    assert ran.stderr == f"catalyst-dl serve: error: --port {port}: give a TCP port from 1 to 65535 (default 8080)\n"
