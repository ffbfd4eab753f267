"""The HTTP endpoints. Each one checks everything it can before it takes a place in a queue.

Order inside a request: token → queue has room (429 before the upload is read) → stream the
upload into a private folder (size limits) → check every image header (pixel limit) and clip
(duration, frame size) → only then decode and matte on a worker thread. The folder is removed
when the response is ready, whatever happened.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from pydantic import BaseModel

from . import adapter
from .jobs import Job, JobState, VideoRequest, new_job_id, valid_job_id
from .notes import collected
from .options import MATTE_FILES, VIDEO_FILES, MatteOptions, VideoJobOptions, multipart_body
from .problems import Problem, problem_responses
from .uploads import Form, Upload, check_image, decode_image, is_image, private_dir, read_form, remove_tree

VIDEO_MEDIA_TYPES = {"webm": "video/webm", "mov": "video/quicktime", "mp4": "video/mp4"}
IMAGE_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
SUFFIXES = {"png": "png", "jpeg": "jpg"}
WARNING_HEADER = "X-Cleanplate-Warning"  # the plate warnings of this answer, " | " between them
PNG_LEVEL = 1  # zlib level: 3 costs 1.4x and 6 (PIL default) 2.8x the time, for 5 % and 12 % smaller files

bearer = HTTPBearer(auto_error=False, description="Needed when the server was started with a token.")


def server_of(request: Request) -> Any:
    return request.app.state.server


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """401 unless the server has no token or the request carries it (compared in constant time)."""
    token = server_of(request).config.token
    if not token:
        return
    given = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise Problem(
            "unauthorized",
            "send the server's token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="cleanplate"'},
        )


router = APIRouter()
api = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=problem_responses(401))


# ---------------------------------------------------------------------------------- service
class Health(BaseModel):
    status: str
    version: str
    model: str
    auth: bool
    queue: dict[str, int]
    video_jobs: int


@router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness and load")
async def healthz(request: Request) -> dict[str, Any]:
    server = server_of(request)
    return {
        "status": "ok",
        "version": adapter.VERSION,
        "model": server.host.name,
        "auth": bool(server.config.token),
        "queue": {"pending": server.pool.pending, "capacity": server.pool.capacity},
        "video_jobs": server.videos.active,
    }


@api.get("/models", tags=["service"], summary="The served model and the built-in ones")
async def models(request: Request) -> dict[str, Any]:
    server = server_of(request)
    limits = server.limits
    return {
        "serving": server.host.describe(),
        "builtin": adapter.builtin_models(),
        "limits": {
            "max_upload_bytes": limits.max_upload_bytes,
            "max_image_pixels": limits.max_image_pixels,
            "max_video_seconds": limits.max_video_seconds,
            "max_video_pixels": limits.max_video_pixels,
        },
    }


# ------------------------------------------------------------------------------------ image
@api.post(
    "/matte",
    tags=["image"],
    summary="Matte one image against its plate",
    response_class=Response,
    responses={
        200: {
            "description": "The requested image (PNG; JPEG when format=jpeg).",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}, "image/jpeg": {}},
        },
        **problem_responses(400, 413, 415, 422, 429, 503),
    },
    openapi_extra=multipart_body(MATTE_FILES, ["image", "plate"], MatteOptions),
)
async def matte(request: Request, query: Annotated[MatteOptions, Query()]) -> Response:
    """Send ``image`` and ``plate`` (and for ``output=comp`` optionally ``background_image``) as
    multipart files; options as query parameters or form fields. Timing is in ``Server-Timing``."""
    server = server_of(request)
    if server.pool.pending >= server.pool.capacity:  # refuse before reading a large upload
        raise Problem("busy", "the queue is full; retry later", headers={"Retry-After": str(server.pool.retry_after())})
    folder = private_dir(server.tmp, "req-")
    try:
        form = await _read(request, folder, MATTE_FILES, MatteOptions)
        options = _merge(MatteOptions, query, form)
        _require(form, {"image": "the photo", "plate": "the clean plate"})
        for upload in form.files.values():
            check_image(upload, server.limits.max_image_pixels)
        if "background_image" in form.files and options.output != "comp":
            raise Problem("invalid-option", "background_image is only used with output=comp")
        if options.format == "jpeg" and options.output != "comp":
            raise Problem(
                "invalid-option", f"format=jpeg is only for output=comp (JPEG has no alpha); got {options.output}"
            )
        (data, timing, notes), waited, ran = await server.pool.run(_matte_blocking, server, form, options)
    finally:
        remove_tree(folder)
    # Server-Timing: waiting for a worker, decoding, waiting for the model (shared with other
    # requests and video jobs), the model, encoding the answer.
    spans = {"queue": waited, **timing}
    headers = {
        "Server-Timing": ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in spans.items()),
        "X-Cleanplate-Model": server.host.name,
        "X-Cleanplate-Queue-Ms": f"{waited * 1000:.1f}",
        "X-Cleanplate-Processing-Ms": f"{ran * 1000:.1f}",
        "Content-Disposition": f'inline; filename="matte_{options.output}.{SUFFIXES[options.format]}"',
        "Cache-Control": "no-store",
    }
    if notes:  # what the CLI prints as `warning:` lines (e.g. a plate alignment that leaves a strip uncovered)
        headers[WARNING_HEADER] = " | ".join(notes)
    return Response(data, media_type=IMAGE_MEDIA_TYPES[options.format], headers=headers)


def _matte_blocking(server: Any, form: Form, options: MatteOptions) -> tuple[bytes, dict[str, float], list[str]]:
    """On a worker thread: decode, matte, encode. Returns the encoded image, where the time went
    and the plate warnings the library raised."""
    t0 = time.perf_counter()
    limit = server.limits.max_image_pixels
    src = adapter.pil_to_rgb(decode_image(form.files["image"], limit))
    plate = adapter.pil_to_rgb(decode_image(form.files["plate"], limit))
    background: Any = options.background
    if "background_image" in form.files:
        background = adapter.pil_to_rgb(decode_image(form.files["background_image"], limit))
    matter = server.host.get(options.refine())
    t1 = time.perf_counter()
    with collected() as notes:
        array = adapter.matte_image(matter, src, plate, align=options.align, kind=options.output, background=background)
    t2 = time.perf_counter()
    data = encode_image(array, options.format)
    wait, model = matter.last_timing()
    timing = {"decode": t1 - t0, "wait": wait, "model": model, "encode": time.perf_counter() - t2}
    return data, timing, notes


def encode_image(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(array))
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=92, subsampling=0)
    else:
        img.save(buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


# ------------------------------------------------------------------------------------ video
@api.post(
    "/videos",
    tags=["video"],
    summary="Start a video job",
    status_code=202,
    responses={
        202: {"description": "Accepted; poll the Location."},
        **problem_responses(400, 413, 415, 422, 429, 503),
    },
    openapi_extra=multipart_body(VIDEO_FILES, ["video"], VideoJobOptions),
)
async def create_video(request: Request, query: Annotated[VideoJobOptions, Query()]) -> JSONResponse:
    """Send ``video`` and ``plate`` (image or clip; or ``plate_frames=A:B``) as multipart files.
    The job runs in the background; ``GET /v1/videos/{id}`` reports its progress."""
    server = server_of(request)
    server.videos.reserve()
    job_id = new_job_id()
    folder = server.videos.folder(job_id)
    folder.mkdir(mode=0o700)
    try:
        form = await _read(request, folder, VIDEO_FILES, VideoJobOptions)
        options = _merge(VideoJobOptions, query, form)
        job, video_request = await _plan_video(server, job_id, form, options)
        server.videos.submit(job, video_request)
    except BaseException:
        remove_tree(folder)
        raise
    return JSONResponse(job_view(server, job), status_code=202, headers={"Location": f"/v1/videos/{job_id}"})


async def _plan_video(server: Any, job_id: str, form: Form, options: VideoJobOptions) -> tuple[Job, VideoRequest]:
    """Check the uploads and options of a video job; returns the job row and what to run."""
    limits = server.limits
    _require(form, {"video": "the clip"})
    source = form.files["video"]
    probe = await _probe(source, limits)
    plate = form.files.get("plate")
    plate_frames = None
    if options.plate_frames is not None:
        if plate is not None:
            raise Problem("invalid-option", "give either a plate file or plate_frames, not both")
        plate_frames = adapter.parse_plate_frames(options.plate_frames)
    elif plate is None:
        raise Problem("invalid-input", "plate: missing; send the clean plate (image or clip) or plate_frames=A:B")
    plate_is_image = plate is not None and is_image(plate)
    if plate is not None:
        if plate_is_image:
            plate_size = check_image(plate, limits.max_image_pixels)
        else:
            plate_probe = await _probe(plate, limits)
            plate_size = (plate_probe.width, plate_probe.height)
        if not options.align and not adapter.plate_fits(plate_size, (probe.width, probe.height)):
            raise Problem(
                "invalid-input",
                f"plate is {plate_size[0]}x{plate_size[1]} but the video is {probe.width}x{probe.height} "
                "(another aspect ratio); crop the plate to the same framing, or set align=true",
            )
    background: Any = options.background
    if "background_image" in form.files:
        if options.output != "comp":
            raise Problem("invalid-option", "background_image is only used with output=comp")
        upload = form.files["background_image"]
        check_image(upload, limits.max_image_pixels)
        background = upload.path.rename(upload.path.with_suffix(".png"))  # the library picks images by suffix
    adapter.video_output(options.output, options.format, server.videos.folder(job_id) / "result")  # 422 if impossible
    max_frames = None
    if probe.duration is None:  # the container does not say: count frames while running
        max_frames = max(1, round(limits.max_video_seconds * (probe.fps or 60.0)))
    job = Job(
        id=job_id,
        state="queued",
        created=time.time(),
        output=options.output,
        format=options.format,
        frames_total=probe.frames,
    )
    video_request = VideoRequest(
        source=source.path,
        plate=plate.path if plate is not None else None,
        plate_is_image=plate_is_image,
        plate_frames=plate_frames,
        output=options.output,
        format=options.format,
        background=background,
        align=options.align,
        smooth=options.smooth,
        refine=options.refine(),
        max_frames=max_frames,
    )
    return job, video_request


async def _probe(upload: Upload, limits: Any) -> adapter.VideoProbe:
    """Probe a clip off the event loop and check it against the limits."""
    try:
        probe = await asyncio.to_thread(adapter.probe_video, upload.path)
    except adapter.CleanplateError as exc:
        reason = str(exc).splitlines()[0].replace(str(upload.path), upload.field)
        raise Problem("invalid-input", f"{upload.field}: {reason}") from None
    if probe.duration is not None and probe.duration > limits.max_video_seconds:
        raise Problem(
            "too-long",
            f"{upload.field}: {probe.duration:.1f} s is longer than the limit of {limits.max_video_seconds:g} s",
        )
    if probe.width * probe.height > limits.max_video_pixels:
        raise Problem(
            "too-many-pixels",
            f"{upload.field}: {probe.width}x{probe.height} frames exceed the limit of "
            f"{limits.max_video_pixels / 1e6:g} megapixels",
        )
    return probe


def job_view(server: Any, job: Job) -> dict[str, Any]:
    """The public description of a job (what GET returns)."""
    total = job.frames_total
    view = {
        "id": job.id,
        "state": job.state,
        "output": job.output,
        "format": job.format,
        "frames_done": job.frames_done,
        "frames_total": total,
        "progress": min(1.0, job.frames_done / total) if total else (1.0 if job.state == "done" else None),
        "fps": round(job.fps, 3) if job.fps else None,
        "eta_seconds": round(eta, 1) if (eta := job.eta_seconds()) is not None else None,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        "expires": job.expires,
        "detail": job.detail,
        "status_url": f"/v1/videos/{job.id}",
        "result_url": f"/v1/videos/{job.id}/result" if job.state == "done" else None,
    }
    return view


@api.get("/videos", tags=["video"], summary="List video jobs, newest first", responses=problem_responses(422))
async def list_videos(
    request: Request,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many jobs.")] = 100,
) -> dict[str, Any]:
    """What this server holds: a pipeline that lost a job id, or a person at ``/docs``, finds it here."""
    server = server_of(request)
    jobs = await asyncio.to_thread(server.store.list, state, limit)
    return {"jobs": [job_view(server, job) for job in jobs], "count": len(jobs)}


def _job(server: Any, job_id: str) -> Job:
    job = server.store.get(job_id) if valid_job_id(job_id) else None
    if job is None:
        raise Problem("not-found", f"no video job {job_id[:40]!r}")
    return job


@api.get("/videos/{job_id}", tags=["video"], summary="State and progress of a job", responses=problem_responses(404))
async def get_video(request: Request, job_id: str) -> dict[str, Any]:
    server = server_of(request)
    return job_view(server, _job(server, job_id))


@api.get(
    "/videos/{job_id}/result",
    tags=["video"],
    summary="Download a finished job's video",
    response_class=FileResponse,
    responses={
        200: {"description": "The video.", "content": {t: {} for t in VIDEO_MEDIA_TYPES.values()}},
        **problem_responses(404, 409, 410),
    },
)
async def get_video_result(request: Request, job_id: str) -> FileResponse:
    server = server_of(request)
    job = _job(server, job_id)
    if job.state == "expired":
        raise Problem("gone", f"the result of job {job_id} was removed after its time-to-live")
    if job.state != "done":
        why = f" ({job.detail})" if job.detail else ""
        raise Problem("not-ready", f"job {job_id} is {job.state}{why}; it has no result")
    path = server.videos.result_path(job)
    if path is None or not path.is_file():
        raise Problem("gone", f"the result of job {job_id} is no longer on the server")
    return FileResponse(
        path,
        media_type=VIDEO_MEDIA_TYPES[job.format],
        filename=f"cleanplate_{job.output}.{job.format}",
        headers={"Cache-Control": "no-store"},
    )


@api.delete(
    "/videos/{job_id}",
    tags=["video"],
    summary="Cancel a job and remove its files",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
)
async def delete_video(request: Request, job_id: str) -> Response:
    server = server_of(request)
    _job(server, job_id)
    await asyncio.to_thread(server.videos.cancel, job_id)
    return Response(status_code=204)


router.include_router(api)


# ---------------------------------------------------------------------------------- helpers
async def _read(request: Request, folder: Any, files: dict[str, str], model: type[BaseModel]) -> Form:
    return await read_form(
        request.headers,
        request.stream(),
        folder,
        file_fields=set(files),
        text_fields=set(model.model_fields),
        limits=server_of(request).limits,
    )


def _merge(model: type[BaseModel], query: BaseModel, form: Form) -> Any:
    """Query options updated by form fields (the form wins), validated together."""
    return model.model_validate({**query.model_dump(exclude_unset=True), **form.fields})


def _require(form: Form, needed: dict[str, str]) -> None:
    for name, what in needed.items():
        if name not in form.files:
            raise Problem("invalid-input", f"{name}: missing; send {what} as a file field named {name!r}")
