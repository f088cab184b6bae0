"""Which images and layers may go: the policy around `ImageStore.gc`.

Kept: the images of each app's last N releases (N = PAAS_KEEP_RELEASES, default 5)
and of its current release, the layers of every running dyno, and whatever was
saved in the last PAAS_GC_GRACE seconds (default ten minutes: a build in progress
has not made its release yet).
Everything else is removed, so destroying an app frees its space at the next run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from paas.image.store import GcResult, ImageStore
from paas.store import Store

KEEP_RELEASES = int(os.environ.get("PAAS_KEEP_RELEASES", "5"))
GRACE_SECONDS = float(os.environ.get("PAAS_GC_GRACE", "600"))


def collect(store: Store, images: ImageStore, running_layers: Iterable[str] = (),
            running_images: Iterable[str] = (), keep_releases: int = KEEP_RELEASES) -> GcResult:
    keep_images = store.images_in_use(keep_releases) | set(running_images)
    recent_images, recent_layers = images.recent(GRACE_SECONDS)
    return images.gc(keep_images | recent_images, set(running_layers) | recent_layers)
