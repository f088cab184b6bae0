"""Images: deterministic layers, a content-addressed store, and OCI export.

`layers` writes the tars, `store` keeps layers unpacked and images as canonical JSON
under $PAAS_HOME/images, `oci` exports an image as an OCI image layout.
"""

from __future__ import annotations

from paas.config import Settings, settings
from paas.image.store import (
    GcResult,
    Image,
    ImageConfig,
    ImageNotFound,
    ImageStore,
    LayerNotFound,
)

__all__ = [
    "GcResult",
    "Image",
    "ImageConfig",
    "ImageNotFound",
    "ImageStore",
    "LayerNotFound",
    "image_store",
]


def image_store(s: Settings | None = None) -> ImageStore:
    """The platform's image store, at $PAAS_HOME/images."""
    return ImageStore((s or settings()).home / "images")
