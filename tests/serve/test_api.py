"""POST /v1/matte and the service endpoints over real HTTP: results, every limit, every bad input."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.serve import Limits

from .conftest import assert_problem, encode, files, scene


def _image(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


# ----------------------------------------------------------------------------------- results
def test_matte_rgba_matches_the_true_matte(client, pair) -> None:
    r = client.post("/v1/matte", files=files(*pair))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-cleanplate-model"] == "classical"
    spans = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
    assert set(spans) == {"queue", "decode", "wait", "model", "encode"}
    assert all(float(v) >= 0 for v in spans.values()) and float(spans["model"]) > 0
    img = _image(r)
    assert img.mode == "RGBA" and img.size == (96, 72)
    _, _, true_alpha = scene()
    alpha = np.asarray(img, np.float32)[..., 3] / 255
    assert np.abs(alpha - true_alpha).mean() < 0.05


@pytest.mark.parametrize(("output", "mode"), [("alpha", "L"), ("fgr", "RGB"), ("comp", "RGB")])
def test_matte_other_outputs(client, pair, output: str, mode: str) -> None:
    r = client.post("/v1/matte", files=files(*pair), data={"output": output})
    assert r.status_code == 200, r.text
    assert _image(r).mode == mode


def test_comp_over_a_colour_as_jpeg(client, pair) -> None:
    options = {"output": "comp", "background": "#0000ff", "format": "jpeg"}
    r = client.post("/v1/matte", params=options, files=files(*pair))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    comp = np.asarray(_image(r), np.int32)
    corner = comp[:8, :8].reshape(-1, 3).mean(axis=0)  # far from the disc: background
    assert np.abs(corner - (0, 0, 255)).max() < 12, corner
    centre = comp[36:42, 45:51].reshape(-1, 3).mean(axis=0)  # the disc's own colour
    assert np.abs(centre - (230, 40, 200)).max() < 25, centre


def test_comp_over_an_uploaded_image(client, pair) -> None:
    background = encode(np.full((30, 40, 3), (250, 200, 10), np.uint8))
    r = client.post("/v1/matte", data={"output": "comp"}, files=files(*pair, background_image=background))
    assert r.status_code == 200, r.text
    corner = np.asarray(_image(r), np.int32)[:8, :8].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - (250, 200, 10)).max() < 6, corner


def test_form_fields_override_query_options(client, pair) -> None:
    r = client.post("/v1/matte", params={"output": "alpha"}, data={"output": "rgba"}, files=files(*pair))
    assert r.status_code == 200 and _image(r).mode == "RGBA"


def test_align_option_runs_and_reports_its_warning(client, pair) -> None:
    # a synthetic pair has too few features to align: the CLI prints a warning line, the server
    # sends the same text in a header (and the matte is made with the plate unaligned)
    r = client.post("/v1/matte", data={"align": "true"}, files=files(*pair))
    assert r.status_code == 200, r.text
    assert r.headers["x-cleanplate-warning"].startswith("plate alignment failed"), r.headers
    plain = client.post("/v1/matte", files=files(*pair))
    assert "x-cleanplate-warning" not in plain.headers  # a fitting plate: no warning, no header


# ------------------------------------------------------------------------------- bad inputs
def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD_REQUESTS = {
    "not an image": ({"image": ("a.png", b"hello, not an image")}, {}, 422, "invalid-input", "not an image"),
    "truncated image": ("truncated", {}, 422, "invalid-input", "corrupt"),
    "missing plate": ("no-plate", {}, 422, "invalid-input", "plate: missing"),
    "empty file": ({"plate": ("p.png", b"")}, {}, 422, "invalid-input", "empty"),
    "unknown field": ("pair", {"colour": "red"}, 422, "invalid-input", "unknown form field 'colour'"),
    "bad output": ("pair", {"output": "mask"}, 422, "invalid-option", "output"),
    "bad colour": ("pair", {"output": "comp", "background": "no-such-colour"}, 422, "invalid-option", "colour"),
    "jpeg with alpha": ("pair", {"format": "jpeg"}, 422, "invalid-option", "jpeg"),
    "background without comp": ("bg", {}, 422, "invalid-option", "background_image"),
    "bad number": ("pair", {"threshold": "lots"}, 422, "invalid-option", "threshold"),
    "out of range": ("pair", {"sample_pixels": "3"}, 422, "invalid-option", "sample_pixels"),
    "refine on classical": ("pair", {"refine_mode": "full"}, 422, "invalid-input", "classical"),
    "gif": ({"plate": ("p.gif", "gif")}, {}, 422, "invalid-input", "GIF"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_a_problem(client, pair, name: str) -> None:
    upload, data, status, kind, words = BAD_REQUESTS[name]
    if upload == "truncated":
        upload = files(pair[0], _truncated(pair[1]))
    elif upload == "no-plate":
        upload = {"image": ("a.png", pair[0], "image/png")}
    elif upload == "pair":
        upload = files(*pair)
    elif upload == "bg":
        upload = files(*pair, background_image=pair[1])
    else:
        base = files(*pair)
        for field, (fname, content) in upload.items():
            if content == "gif":
                buf = io.BytesIO()
                Image.new("RGB", (96, 72)).save(buf, "GIF")
                content = buf.getvalue()
            base[field] = (fname, content, "application/octet-stream")
        upload = base
    body = assert_problem(client.post("/v1/matte", files=upload, data=data), status, kind)
    assert words.lower() in body["detail"].lower(), body


def test_plate_of_another_aspect(client) -> None:
    frame, plate, _ = scene((72, 96))
    r = client.post("/v1/matte", files=files(encode(frame), encode(np.ascontiguousarray(plate.transpose(1, 0, 2)))))
    assert "aspect" in assert_problem(r, 422, "invalid-input")["detail"]


def test_unknown_query_option(client, pair) -> None:
    assert_problem(client.post("/v1/matte", params={"colour": "red"}, files=files(*pair)), 422, "invalid-option")


def test_repeated_field(client, pair) -> None:
    upload = [("image", ("a.png", pair[0])), ("image", ("b.png", pair[0])), ("plate", ("p.png", pair[1]))]
    assert "twice" in assert_problem(client.post("/v1/matte", files=upload), 422)["detail"]


def test_text_where_a_file_belongs(client, pair) -> None:
    r = client.post("/v1/matte", data={"plate": "plate.png"}, files={"image": ("a.png", pair[0])})
    assert "file upload" in assert_problem(r, 422)["detail"]


def test_not_multipart(client) -> None:
    assert_problem(client.post("/v1/matte", json={"image": "x"}), 415, "unsupported-media-type")


def test_multipart_without_boundary(client) -> None:
    r = client.post("/v1/matte", content=b"x", headers={"content-type": "multipart/form-data"})
    assert_problem(r, 400, "bad-request")


def test_malformed_multipart(client) -> None:
    r = client.post(
        "/v1/matte", content=b"--xyz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert_problem(r, 400)


def test_unknown_route_and_method(client) -> None:
    assert_problem(client.get("/v1/nothing"), 404, "not-found")
    assert_problem(client.put("/v1/matte"), 405, "method-not-allowed")
    assert_problem(client.get("/v1/videos/not-a-job-id"), 404, "not-found")
    assert_problem(client.get("/v1/videos/AAAAAAAAAAAAAAAA/result"), 404, "not-found")
    assert_problem(client.delete("/v1/videos/AAAAAAAAAAAAAAAA"), 404, "not-found")


# ----------------------------------------------------------------------------------- limits
def test_declared_body_over_the_limit(serve, pair) -> None:
    live = serve(limits=Limits(max_upload_bytes=20_000))
    big = files(pair[0] + b"\0" * 30_000, pair[1])
    with live.client() as c:
        body = assert_problem(c.post("/v1/matte", files=big), 413, "too-large")
        assert "limit" in body["detail"]
        assert c.post("/v1/matte", files=files(*pair)).status_code == 200  # within the limit: fine


def test_streamed_body_over_the_limit(serve, pair) -> None:
    """Chunked (no Content-Length): counted as it arrives."""
    live = serve(limits=Limits(max_upload_bytes=20_000))
    boundary = "b0undary"

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'.encode()
        for _ in range(40):
            yield b"\0" * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    with live.client() as c:
        r = c.post("/v1/matte", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert "content-length" not in r.request.headers
        assert_problem(r, 413, "too-large")


def test_pixel_limit(serve, pair) -> None:
    live = serve(limits=Limits(max_image_pixels=5000))  # the pair is 96x72 = 6912 px
    with live.client() as c:
        body = assert_problem(c.post("/v1/matte", files=files(*pair)), 413, "too-many-pixels")
        assert "96x72" in body["detail"]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height but holds almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7000, 60_000])  # 49 Mpx: our limit; 3.6 Gpx: also Pillow's own bomb guard
def test_pixel_limit_is_checked_before_decoding(client, pair, side: int) -> None:
    """Were the image decoded first, this would be a 422 (corrupt) or an out-of-memory, not a 413."""
    bomb = _png_header_only(side, side)
    assert len(bomb) < 200
    r = client.post("/v1/matte", files=files(bomb, pair[1]))
    assert_problem(r, 413, "too-many-pixels")


def test_text_field_too_long(client, pair) -> None:
    r = client.post("/v1/matte", data={"background": "x" * 5000}, files=files(*pair))
    assert_problem(r, 413, "too-large")


def test_too_many_parts(serve, pair) -> None:
    live = serve(limits=Limits(max_fields=3))
    with live.client() as c:
        r = c.post("/v1/matte", data={"output": "comp", "align": "false"}, files=files(*pair))
        assert "too many" in assert_problem(r, 422)["detail"]


# --------------------------------------------------------------------------- files & folders
def test_client_file_names_never_become_paths(serve, pair, tmp_path: Path) -> None:
    state = tmp_path / "state"
    live = serve(state_dir=state)
    upload = {
        "image": ("../../../../escaped_image.png", pair[0], "image/png"),
        "plate": ("/tmp/absolute_plate.png", pair[1], "image/png"),
    }
    with live.client() as c:
        assert c.post("/v1/matte", files=upload).status_code == 200
    assert not Path("/tmp/absolute_plate.png").exists()
    assert not list(tmp_path.parent.rglob("escaped_image.png"))
    assert list((state / "tmp").iterdir()) == []  # the request's private folder is gone


def test_private_folders(serve, tmp_path: Path) -> None:
    state = tmp_path / "state"
    serve(state_dir=state)
    for folder in (state / "tmp", state / "jobs"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder


def test_failed_request_leaves_no_files(client, shared_server, pair) -> None:
    assert_problem(client.post("/v1/matte", files=files(b"junk", pair[1])), 422)
    tmp = shared_server.app.state.server.tmp
    assert list(tmp.iterdir()) == []


# ------------------------------------------------------------------------------------ token
def test_token(serve, pair) -> None:
    live = serve(token="s3cret-token")
    with live.client() as c:
        r = c.get("/v1/models")
        assert_problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        assert_problem(c.get("/v1/models", headers={"Authorization": "Basic czNjcmV0LXRva2Vu"}), 401)
        assert_problem(c.post("/v1/matte", files=files(*pair)), 401)  # before the upload is used
        ok = {"Authorization": "Bearer s3cret-token"}
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert c.post("/v1/matte", files=files(*pair), headers=ok).status_code == 200
        health = c.get("/healthz")  # open: it says a token is needed, nothing more
        assert health.status_code == 200 and health.json()["auth"] is True
        assert c.get("/").status_code == 200


# ---------------------------------------------------------------------------------- service
def test_healthz_and_models(client) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"] == "classical" and health["auth"] is False
    assert health["queue"]["capacity"] == Limits().workers + Limits().queue_size
    models = client.get("/v1/models").json()
    assert models["serving"]["name"] == "classical"
    assert {m["name"] for m in models["builtin"]} >= {"default", "classical"}
    assert models["limits"]["max_image_pixels"] == Limits().max_image_pixels


def test_docs_and_schema(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text  # works without internet access
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/matte"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"image", "plate", "background_image", "output", "align"} <= set(body["properties"])
    assert "422" in schema["paths"]["/v1/matte"]["post"]["responses"]


def test_browser_app_is_served_from_the_package(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
