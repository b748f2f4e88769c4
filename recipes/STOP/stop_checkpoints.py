"""Loading trained weights for testing and inference: the best checkpoint's
state (normaliser statistics included), then the model weights averaged over
the ``avg_checkpoints`` best checkpoints by validation token accuracy."""

from __future__ import annotations

import logging
from functools import partial

import torch
from speechbrain.utils.checkpoints import average_checkpoints

logger = logging.getLogger(__name__)


def load_averaged_model(hparams: dict, max_key: str | None = "ACC", min_key: str | None = None, device="cpu"):
    """Recover the best checkpoint and average the model over the best few.

    Falls back to the latest checkpoint when none carries ``max_key``/``min_key``.
    Returns the list of checkpoints averaged (empty when there is none).
    """
    checkpointer = hparams["checkpointer"]
    keys = {"max_key": max_key, "min_key": min_key}
    ckpts = checkpointer.find_checkpoints(**keys, max_num_checkpoints=int(hparams["avg_checkpoints"]))
    if not ckpts:
        keys = {}
        ckpts = checkpointer.find_checkpoints(max_num_checkpoints=1)
    if not ckpts:
        logger.warning("No checkpoint in %s: using the model as it is", checkpointer.checkpoints_dir)
        return []
    checkpointer.recover_if_possible(**keys)
    if len(ckpts) > 1:
        loader = partial(torch.load, map_location=device, weights_only=True)
        state = average_checkpoints(ckpts, recoverable_name="model", parameter_loader=loader)
        hparams["model"].load_state_dict(state, strict=True)
    hparams["model"].eval()
    logger.info("Loaded the average of %d checkpoint(s): %s", len(ckpts), ", ".join(c.path.name for c in ckpts))
    return ckpts
