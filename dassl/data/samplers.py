"""Batch-composition samplers (by domain, by class) and `build_sampler`.

The domain and class samplers draw from Python's global `random` (and numpy for up-sampling), as
upstream does, so `set_random_seed` makes them reproducible. Their length is fixed at construction
by simulating one pass with a private generator, leaving the global RNG untouched.
"""
import random
from collections import defaultdict

import numpy as np
from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

from dassl.errors import ConfigError

__all__ = [
    "RandomDomainSampler",
    "SeqDomainSampler",
    "RandomClassSampler",
    "build_sampler",
    "AVAI_SAMPLERS",
]


def _group_indices(data_source, key):
    groups = defaultdict(list)
    for index, item in enumerate(data_source):
        groups[getattr(item, key)].append(index)
    return groups


class RandomDomainSampler(Sampler):
    """Each batch: `n_domain` random domains, `batch_size / n_domain` unused random images of each.

    A pass ends after the batch that leaves some domain with fewer images than one batch needs.
    """

    def __init__(self, data_source, batch_size, n_domain):
        self.domain_to_indices = _group_indices(data_source, "domain")
        self.domains = sorted(self.domain_to_indices)
        if not n_domain or n_domain <= 0:
            n_domain = len(self.domains)
        if n_domain > len(self.domains):
            raise ConfigError(
                f"RandomDomainSampler: n_domain={n_domain} but the data has only {len(self.domains)} domain(s)."
            )
        if batch_size % n_domain != 0:
            raise ConfigError(
                f"RandomDomainSampler: batch size {batch_size} must be divisible by n_domain={n_domain}."
            )
        self.n_domain = n_domain
        self.per_domain = batch_size // n_domain
        small = {d: len(idx) for d, idx in self.domain_to_indices.items() if len(idx) < self.per_domain}
        if small:
            raise ConfigError(
                f"RandomDomainSampler: every batch takes {self.per_domain} images per domain, but domain(s) "
                f"{small} (index: count) have fewer; lower the batch size or raise n_domain."
            )
        self.length = len(self._indices(random.Random(0)))

    def _indices(self, rng):
        remaining = {d: list(idx) for d, idx in self.domain_to_indices.items()}
        out = []
        exhausted = False
        while not exhausted:
            for domain in rng.sample(self.domains, self.n_domain):
                pool = remaining[domain]
                for index in rng.sample(pool, self.per_domain):
                    pool.remove(index)
                    out.append(index)
                exhausted = exhausted or len(pool) < self.per_domain
        return out

    def __iter__(self):
        return iter(self._indices(random))

    def __len__(self):
        return self.length


class SeqDomainSampler(Sampler):
    """Each batch: `batch_size / #domains` random images from every domain, in sorted domain order."""

    def __init__(self, data_source, batch_size):
        self.domain_to_indices = _group_indices(data_source, "domain")
        self.domains = sorted(self.domain_to_indices)
        if batch_size % len(self.domains) != 0:
            raise ConfigError(
                f"SeqDomainSampler: batch size {batch_size} must be divisible by the number of "
                f"domains ({len(self.domains)})."
            )
        self.per_domain = batch_size // len(self.domains)
        self.length = len(self._indices(random.Random(0)))

    def _indices(self, rng):
        pools = {}
        for domain in self.domains:
            pools[domain] = list(self.domain_to_indices[domain])
            rng.shuffle(pools[domain])
        n_batches = min(len(pool) for pool in pools.values()) // self.per_domain
        out = []
        for b in range(n_batches):
            for domain in self.domains:
                out.extend(pools[domain][b * self.per_domain : (b + 1) * self.per_domain])
        return out

    def __iter__(self):
        return iter(self._indices(random))

    def __len__(self):
        return self.length


class RandomClassSampler(Sampler):
    """Each batch: `batch_size // n_ins` random classes with `n_ins` images each (classes with fewer
    images are up-sampled with replacement)."""

    def __init__(self, data_source, batch_size, n_ins):
        if batch_size < n_ins:
            raise ConfigError(
                f"RandomClassSampler: batch size {batch_size} must be at least n_ins={n_ins} "
                "(images per class in a batch)."
            )
        self.n_ins = n_ins
        self.classes_per_batch = batch_size // n_ins
        self.label_to_indices = _group_indices(data_source, "label")
        self.labels = list(self.label_to_indices)
        self.length = sum(
            max(len(idx), n_ins) - max(len(idx), n_ins) % n_ins for idx in self.label_to_indices.values()
        )

    def __iter__(self):
        chunks = {}
        for label in self.labels:
            indices = list(self.label_to_indices[label])
            if len(indices) < self.n_ins:
                indices = np.random.choice(indices, size=self.n_ins, replace=True).tolist()
            random.shuffle(indices)
            usable = len(indices) - len(indices) % self.n_ins
            chunks[label] = [indices[i : i + self.n_ins] for i in range(0, usable, self.n_ins)]
        available = list(self.labels)
        out = []
        while len(available) >= self.classes_per_batch:
            for label in random.sample(available, self.classes_per_batch):
                out.extend(chunks[label].pop(0))
                if not chunks[label]:
                    available.remove(label)
        return iter(out)

    def __len__(self):
        return self.length


AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler",
                 "RandomClassSampler"]


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=16,
                  generator=None):
    """Build a sampler by name; `generator` drives RandomSampler (a seeded one gives a fixed order)."""
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source, generator=generator)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ConfigError(f"Unknown sampler type: {sampler_type} (valid: {AVAI_SAMPLERS})")
