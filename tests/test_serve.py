"""``catalyst-dl serve``: a real server process, a real HTTP client; answers, options, bad input, batching."""
import io
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import red_car_photo
from serving import running_server

HEIGHT, WIDTH = 160, 240


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
])
def test_bad_input_is_one_json_error_and_the_server_goes_on(client, car, name, body, params, status, words):
    photo, _, good = car
    if body is None:
        body = truncated_jpeg(photo) if name == "truncated JPEG" else good
    elif body == "big":
        body = encoded(np.zeros((400, 300, 3), np.uint8))  # 0.12 megapixels, small file
    response = client.post("/api/remove", params=params, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert words in message and "\n" not in message
    if params.get("format") == "gif":
        assert response.json()["allowed"] == {"format": ["png", "jpg", "webp"]}
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
