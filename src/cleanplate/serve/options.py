"""Request options, as query parameters or form fields (the form wins), validated once by pydantic.

Unknown options are refused (``extra='forbid'``) so a misspelt option is an error, not a silent
default. The refine options have the names and ranges of ``cleanplate image``'s flags.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import adapter


def _color(value: str, allow_blur: bool = False) -> str:
    text = value.strip()
    if allow_blur and text.lower() == "blur":
        return "blur"
    try:
        adapter.check_color(text)
    except adapter.InputError as exc:
        raise ValueError(str(exc)) from None
    return text


class RefineOptions(BaseModel):
    """MattingRefine settings for this request (default: the server's)."""

    model_config = ConfigDict(extra="forbid")

    refine_mode: Literal["sampling", "thresholding", "full"] | None = Field(
        None, description="Which patches the refiner recomputes (network models only)."
    )
    sample_pixels: int | None = Field(None, ge=16, le=100_000_000, description="Pixels refined in sampling mode.")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="Error threshold in thresholding mode.")
    backbone_scale: float | None = Field(None, gt=0.0, le=0.5, description="e.g. 0.25; default: by image size.")

    def refine(self) -> dict[str, Any]:
        """As ``cleanplate.load`` names them; only the ones given."""
        values = {
            "refine_mode": self.refine_mode,
            "refine_sample_pixels": self.sample_pixels,
            "refine_threshold": self.threshold,
            "backbone_scale": self.backbone_scale,
        }
        return {k: v for k, v in values.items() if v is not None}


class MatteOptions(RefineOptions):
    """Options of ``POST /v1/matte``."""

    output: Literal["rgba", "alpha", "fgr", "comp"] = Field(
        "rgba",
        description="rgba: subject with straight alpha; alpha: the matte; fgr: foreground colour; comp: composite.",
    )
    format: Literal["png", "jpeg"] = Field("png", description="jpeg only for output=comp.")
    background: str = Field(
        "green", max_length=64, description="Colour for comp: a name, #rrggbb or r,g,b (or send background_image)."
    )
    align: bool = Field(False, description="Align a handheld plate onto the image first.")

    @field_validator("background")
    @classmethod
    def _background(cls, value: str) -> str:
        return _color(value)


class VideoJobOptions(RefineOptions):
    """Options of ``POST /v1/videos``."""

    output: Literal["rgba", "alpha", "fgr", "comp"] = Field(
        "rgba", description="rgba needs webm (VP9 alpha) or mov (ProRes 4444)."
    )
    format: Literal["webm", "mov", "mp4"] = Field("webm", description="Container of the result.")
    background: str = Field("green", max_length=64, description="For comp: a colour, 'blur', or send background_image.")
    align: bool = Field(False, description="Align the plate to every frame (handheld camera).")
    smooth: float = Field(0.0, ge=0.0, lt=1.0, description="Temporal matte smoothing strength (0: off).")
    plate_frames: str | None = Field(
        None,
        max_length=32,
        pattern=r"^\s*\d+\s*:\s*\d*\s*$",
        description="A:B: frames A..B-1 of the video are the plate.",
    )

    @field_validator("background")
    @classmethod
    def _background(cls, value: str) -> str:
        return _color(value, allow_blur=True)


MATTE_FILES = {
    "image": "The photo with the subject (PNG, JPEG, WebP, TIFF, BMP).",
    "plate": "The clean plate: the same shot without the subject.",
    "background_image": "Optional background for output=comp (cover-resized).",
}
VIDEO_FILES = {
    "video": "The clip with the subject (anything FFmpeg reads).",
    "plate": "The clean plate: an image or a clip of the empty scene (or use plate_frames).",
    "background_image": "Optional background image for output=comp (cover-resized).",
}


def multipart_body(files: dict[str, str], required: list[str], model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a multipart body we parse ourselves (files + option fields)."""
    properties: dict[str, Any] = {
        name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()
    }
    schema = model.model_json_schema()
    properties.update(schema["properties"])
    body: dict[str, Any] = {"type": "object", "required": required, "properties": properties}
    if "$defs" in schema:
        body["$defs"] = schema["$defs"]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}
