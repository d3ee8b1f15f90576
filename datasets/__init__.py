"""The project's own datasets; importing this package registers them in DATASET_REGISTRY."""
from .toy_domains import ToyDomains, ToyParams, generate_toy_domains, toy_rng
from .toy_render import CLASSNAMES as TOY_CLASSNAMES
from .toy_render import DOMAINS as TOY_DOMAINS
from .toy_render import render_images

__all__ = ["ToyDomains", "ToyParams", "generate_toy_domains", "toy_rng", "render_images",
           "TOY_CLASSNAMES", "TOY_DOMAINS"]
