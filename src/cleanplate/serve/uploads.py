"""Streaming multipart uploads into the server's private folder, with every limit enforced on the way.

Why not FastAPI's ``UploadFile``: its parser spools files to the system temp folder, keeps the
client's file name and only learns the size after the fact. Here each file part streams into a
file with a random name inside a 0700 folder owned by this request (the client's file name is
never used for anything), the request body is counted as it arrives (the declared
``Content-Length`` is checked first), and unknown or repeated fields are refused, so a typo in an
option name is an error instead of being silently ignored.

Images are opened lazily with Pillow, which reads only the header: the pixel count is checked
before a single pixel is decoded, so a small file that would decode to gigabytes is refused.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from .config import Limits
from .problems import Problem

# Formats the server decodes; anything else (EPS, PDF, ICNS...) is refused before decoding.
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "BMP", "MPO"}


@dataclass
class Upload:
    """One uploaded file: where its bytes are (random name) and how many there are."""

    field: str
    path: Path
    size: int = 0
    content_type: str | None = None


@dataclass
class Form:
    files: dict[str, Upload] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


def private_dir(parent: Path, prefix: str) -> Path:
    """A fresh folder only this user can enter (mkdtemp creates it 0700)."""
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class _Parser:
    """Callbacks for python-multipart's streaming parser; writes file parts straight to disk."""

    def __init__(self, folder: Path, file_fields: set[str], text_fields: set[str], limits: Limits) -> None:
        self.folder, self.file_fields, self.text_fields, self.limits = folder, file_fields, text_fields, limits
        self.form = Form()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._file: BinaryIO | None = None
        self._upload: Upload | None = None
        self._text = bytearray()
        self.ended = False

    # python-multipart callbacks -------------------------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_fields:
            raise Problem("invalid-input", f"too many form parts (at most {self.limits.max_fields})")
        self._headers, self._name, self._file, self._upload = {}, None, None, None
        self._text = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw = options.get(b"name")
        if raw is None:
            raise Problem("invalid-input", "a form part has no name (Content-Disposition: form-data; name=...)")
        name = raw.decode("utf-8", "replace")
        known = self.file_fields | self.text_fields
        if name not in known:
            raise Problem("invalid-input", f"unknown form field {name!r}; expected: {', '.join(sorted(known))}")
        if name in self.form.files or name in self.form.fields:
            raise Problem("invalid-input", f"form field {name!r} is given twice")
        self._name = name
        if name in self.file_fields and b"filename" not in options:
            raise Problem("invalid-input", f"form field {name!r} must be a file upload (with a filename), not text")
        if name in self.file_fields:
            # The client's file name is deliberately ignored: the stored name is random.
            path = self.folder / f"{name}-{secrets.token_hex(8)}"
            self._file = open(path, "xb")  # noqa: SIM115 - closed in on_part_end / close()
            content_type = self._headers.get(b"content-type", b"").decode("latin-1") or None
            self._upload = Upload(name, path, 0, content_type)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None and self._upload is not None:
            self._file.write(chunk)
            self._upload.size += len(chunk)
            return
        if len(self._text) + len(chunk) > self.limits.max_field_bytes:
            raise Problem("too-large", f"form field {self._name!r} is longer than {self.limits.max_field_bytes} bytes")
        self._text.extend(chunk)

    def on_part_end(self) -> None:
        if self._name is None:
            return
        if self._file is not None and self._upload is not None:
            self._file.close()
            self._file = None
            if self._upload.size == 0:
                raise Problem("invalid-input", f"{self._name}: the uploaded file is empty")
            self.form.files[self._name] = self._upload
            return
        try:
            text = self._text.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem("invalid-input", f"form field {self._name!r} is not UTF-8 text") from None
        self.form.fields[self._name] = text

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def read_form(
    headers: Any,
    stream: AsyncIterator[bytes],
    folder: Path,
    *,
    file_fields: set[str],
    text_fields: set[str],
    limits: Limits,
) -> Form:
    """Parse a multipart/form-data body into ``folder``; :class:`Problem` for every mistake."""
    content_type = headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise Problem(
            "unsupported-media-type",
            f"send multipart/form-data (got {content_type.split(';')[0] or 'no Content-Type'})",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise Problem("bad-request", "multipart/form-data without a boundary")
    declared = headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise Problem("bad-request", f"Content-Length {declared!r} is not a number") from None
        if length > limits.max_upload_bytes:
            raise Problem("too-large", _too_large(limits))
    callbacks = _Parser(folder, file_fields, text_fields, limits)
    parser = MultipartParser(boundary, {name: getattr(callbacks, name) for name in _CALLBACKS})
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > limits.max_upload_bytes:
                raise Problem("too-large", _too_large(limits))
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise Problem("bad-request", f"malformed multipart body ({exc})") from None
    finally:
        callbacks.close()
    if callbacks.parts == 0:
        raise Problem("bad-request", "the multipart body holds no parts")
    if not callbacks.ended:
        raise Problem("bad-request", "the multipart body ends before its closing boundary")
    return callbacks.form


_CALLBACKS = (
    "on_part_begin",
    "on_part_data",
    "on_part_end",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_end",
)


def _too_large(limits: Limits) -> str:
    return f"the request is larger than the server's limit of {limits.max_upload_bytes / 2**20:g} MB"


# ------------------------------------------------------------------------------------ images
def check_image(upload: Upload, max_pixels: int) -> tuple[int, int]:
    """Open lazily (header only) and check format and pixel count; returns (width, height)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload.path) as img:
                fmt, (width, height) = img.format, img.size
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise Problem("invalid-input", f"{upload.field}: not an image (PNG, JPEG, WebP, TIFF or BMP)") from None
        raise Problem("too-many-pixels", f"{upload.field}: image too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise Problem("invalid-input", f"{upload.field}: unreadable image ({_reason(exc)})") from None
    if fmt not in IMAGE_FORMATS:
        raise Problem("invalid-input", f"{upload.field}: {fmt} images are not accepted; send PNG, JPEG, WebP or TIFF")
    if width < 1 or height < 1:
        raise Problem("invalid-input", f"{upload.field}: the image is empty ({width}x{height})")
    if width * height > max_pixels:
        raise Problem(
            "too-many-pixels",
            f"{upload.field}: {width}x{height} is {width * height / 1e6:.1f} megapixels; "
            f"the limit is {max_pixels / 1e6:g}",
        )
    return width, height


def decode_image(upload: Upload, max_pixels: int) -> Image.Image:
    """Decode an image already passed :func:`check_image` (EXIF orientation applied)."""
    check_image(upload, max_pixels)  # cheap, and the file cannot have changed: it is ours
    try:
        with Image.open(upload.path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise Problem("invalid-input", f"{upload.field}: truncated or corrupt image ({_reason(exc)})") from None


def is_image(upload: Upload) -> bool:
    """Whether Pillow recognises the file (header only); used to tell plate images from plate clips."""
    with contextlib.suppress(Exception), Image.open(upload.path) as img:
        return img.format in IMAGE_FORMATS
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
