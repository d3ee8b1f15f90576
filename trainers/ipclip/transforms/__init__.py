"""The IP-CLIP scenarios' image transforms (watermark, strong style, the authorization mixture):
PIL -> PIL pre-transforms that register themselves in the engine's PRE_TRANSFORM_REGISTRY when this
package is imported (trainers.register_all does), so that streams and DATASET.TEST_SETS can name
them. Their config keys (INPUT.WATERMARK, INPUT.STRONG_STYLE, INPUT.AUTH_MIX) are project keys,
declared in trainers/config.py.
"""
from . import auth_mixture, strong_style, watermark  # noqa: F401  (registers them)
