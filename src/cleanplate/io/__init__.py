"""File input and output: images (here), video (``io.video``), atomic writes (``io.atomic``)."""

from .atomic import atomic_path, check_output, ensure_dir
from .image import as_rgb, read_image, write_image

__all__ = ["as_rgb", "atomic_path", "check_output", "ensure_dir", "read_image", "write_image"]
