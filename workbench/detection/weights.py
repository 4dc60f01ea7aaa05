"""Initial weights: ``--weights imagenet|none|PATH``.

``imagenet`` resolves to torchvision's weight enum for the backbone; torchvision loads
it through the torch hub cache (``$TORCH_HOME/hub/checkpoints``), downloading only when
the file is not there. Offline with no cached file we stop at once with a message that
names the ways on (``--weights PATH``, ``--weights none``) instead of letting the
download hang or fail deep inside torchvision.

``PATH`` is a file holding a state dict: a whole detector's (ours or torchvision's), a
training checkpoint (``{"model": ...}``), or an ImageNet classifier's (loaded into the
backbone). Keys that do not fit (other heads, other class counts) are left out and
counted in the log.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import WorkbenchError

logger = logging.getLogger(__name__)

NETWORK_PROBE_TIMEOUT_S = 2.0


class WeightsUnavailable(WorkbenchError):
    """Pretrained weights are neither cached nor downloadable."""


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


def ensure_available(weights_enum, backbone: str) -> None:
    """Raise ``WeightsUnavailable`` fast when the file is not cached and the network is
    out of reach (a DNS failure or a 2 s connect timeout, whichever comes first)."""
    cached = hub_cache_file(weights_enum)
    if cached.is_file():
        return
    if _can_reach(weights_enum.url):
        logger.info("downloading %s to %s", weights_enum.url, cached)
        return
    raise WeightsUnavailable(
        f"ImageNet weights for backbone '{backbone}' are not in the torch hub cache "
        f"({cached}) and {urlparse(weights_enum.url).hostname} cannot be reached. "
        f"Copy the file there, pass a local file with `--weights PATH`, or train from "
        f"scratch with `--weights none`.")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"--weights {path}: no such file. Use `--weights imagenet`, "
                             "`--weights none`, or a path to a .pt/.pth state dict.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors alike
        raise WorkbenchError(f"--weights {path}: not a PyTorch state dict ({exc})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WorkbenchError(f"--weights {path}: expected a state dict (name -> tensor)")
    return obj


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> int:
    """Load every tensor whose name and shape fit; returns how many did. Tries the
    names as they are, as a detector's backbone body, and with a classifier's
    ``features.`` prefix dropped; the mapping that fits most wins."""
    own = model.state_dict()
    candidates = {
        "as is": state,
        "into backbone.body": {f"backbone.body.{k}": v for k, v in state.items()},
        "features -> backbone.body": {f"backbone.body.{k[len('features.'):]}": v
                                      for k, v in state.items() if k.startswith("features.")},
    }
    best_name, best = max(
        ((name, {k: v for k, v in cand.items() if k in own and own[k].shape == v.shape})
         for name, cand in candidates.items()),
        key=lambda item: len(item[1]))
    if not best:
        raise WorkbenchError(f"{source}: none of its {len(state)} tensors fit this model; "
                             "is it for another backbone?")
    model.load_state_dict(best, strict=False)
    logger.info("%s: loaded %d of %d tensors (%s); %d of the model's left as initialised",
                source, len(best), len(state), best_name, len(own) - len(best))
    return len(best)
