"""Test-time work split between DDP processes and gathered back: the
recipe's test stage and ``stop-slu evaluate`` share these.

A duration-sorted list of utterances is dealt round-robin (every
world_size-th one to each process), so each process gets utterances of every
length and about the same amount of audio; the results come back to every
process with ``torch.distributed.all_gather_object``.
"""

from __future__ import annotations

import torch
from speechbrain.dataio.dataset import FilteredSortedDynamicItemDataset

from stop_slu.brain import distributed


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) outside DDP."""
    if not distributed():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def shard_ids(ids: list) -> list:
    """This process's share of ``ids`` (in order): every world_size-th one
    from its rank; all of them in one process."""
    rank, world = rank_and_world()
    return list(ids)[rank::world]


def shard(dataset):
    """DDP: this process's share of a (duration-sorted) SpeechBrain dataset
    (``shard_ids`` of its IDs); the whole dataset in one process."""
    if not distributed():
        return dataset
    return FilteredSortedDynamicItemDataset(dataset, shard_ids(dataset.data_ids))


def gather(mine) -> list:
    """Every process's ``mine`` (any picklable object), in rank order; ``[mine]`` in one process."""
    if not distributed():
        return [mine]
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, mine)
    return everyone
