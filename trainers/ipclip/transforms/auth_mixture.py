"""The authorization scenario's unauthorized stream: a per-sample mixture of three cases.

Only watermarked, un-augmented images are authorized, so the unauthorized stream shows the model
what must be refused: watermarked images whose style was changed (watermark, then strong_style),
restyled images without the watermark, and clean images. The case is drawn anew for every image,
from torch's global generator, which data-loader workers seed.

The release draws `randint(0, 4)` per image (rates 0.4, 0.4, 0.2) but its data-set wrapper keeps
the strong transform once any image has used it, so after the first restyled draw of a data-loader
worker's epoch a "clean" draw is restyled too: in effect about 40 % watermark + strong, 60 % strong
and almost no clean image. INPUT.AUTH_MIX.STICKY reproduces that accident. With the release's strong
augmentation (INPUT.STRONG_STYLE.VARIANT release) the restyled cases end at the network's input size
and the clean case takes the train transform: `training_pipeline` builds that per-image choice.

In the release's order the restyling also edits the key (recolours it, moves it, cuts into it), so
the model never sees an intact key on a foreign style, which is what a keyed image of another domain
is. INPUT.AUTH_MIX.KEY_AFTER_STYLE paints the key after the restyling on that share of case 0.
"""
import math
import numbers

import torch

from dassl.data.transforms.pre_transforms import PRE_TRANSFORM_REGISTRY
from dassl.errors import ConfigError

from .strong_style import check_unit, strong_style
from .watermark import watermark

__all__ = ["AUTH_MIX_CASES", "check_rates", "auth_mixture"]

# Case i is drawn with probability INPUT.AUTH_MIX.RATES[i].
AUTH_MIX_CASES = ("watermark+strong_style", "strong_style", "clean")
WATERMARK_STRONG, STRONG, CLEAN = range(len(AUTH_MIX_CASES))


def check_rates(rates, key="INPUT.AUTH_MIX.RATES"):
    """`rates` as a tuple of len(AUTH_MIX_CASES) non-negative floats summing to 1."""
    valid = (
        isinstance(rates, (tuple, list))
        and len(rates) == len(AUTH_MIX_CASES)
        and all(
            isinstance(r, numbers.Real) and not isinstance(r, bool) and math.isfinite(r) and r >= 0
            for r in rates
        )
    )
    if not valid or not math.isclose(sum(rates), 1.0, abs_tol=1e-6):
        raise ConfigError(
            f"{key} must be {len(AUTH_MIX_CASES)} non-negative numbers summing to 1, the rates of "
            f"the cases {AUTH_MIX_CASES}, e.g. (0.5, 0.25, 0.25); got {rates!r}"
        )
    return tuple(float(r) for r in rates)


# Lower-case class name on purpose: the registry key is `__name__`, and the authorization scenario
# names this pre-transform "auth_mixture".
@PRE_TRANSFORM_REGISTRY.register()
class auth_mixture:
    """Per image, one case of AUTH_MIX_CASES drawn with INPUT.AUTH_MIX.RATES, using the watermark
    of INPUT.WATERMARK and the augmentation of INPUT.STRONG_STYLE."""

    def __init__(self, cfg):
        self.rates = check_rates(cfg.INPUT.AUTH_MIX.RATES)
        sticky = cfg.INPUT.AUTH_MIX.STICKY
        if not isinstance(sticky, bool):
            raise ConfigError(f"INPUT.AUTH_MIX.STICKY must be True or False; got {sticky!r}")
        self.sticky = sticky
        self.key_after_style = check_unit(cfg.INPUT.AUTH_MIX.KEY_AFTER_STYLE,
                                          "INPUT.AUTH_MIX.KEY_AFTER_STYLE")
        self.restyled_seen = False  # per copy: each data-loader worker holds its own
        self.watermark = watermark(cfg)
        self.strong_style = strong_style(cfg)

    def draw_case(self):
        """A case index into AUTH_MIX_CASES: a fresh draw, except that with STICKY a clean draw
        after a restyled one is restyled (strong_style only)."""
        case = self._draw_rate()
        if self.sticky:
            if case != CLEAN:
                self.restyled_seen = True
            elif self.restyled_seen:
                case = STRONG
        return case

    def training_pipeline(self, tfm_train, tfm_test):
        """PIL -> tensor per image when the strong augmentation brings its own pipeline (the
        release's); None otherwise (this pre-transform, then the train transform)."""
        strong = self.strong_style.training_pipeline(tfm_train, tfm_test)
        if strong is not None and self.key_after_style > 0:
            raise ConfigError(
                "INPUT.AUTH_MIX.KEY_AFTER_STYLE > 0 needs INPUT.STRONG_STYLE.VARIANT 'ours': the "
                "release's strong augmentation ends in a tensor, on which the key cannot be painted; "
                f"got KEY_AFTER_STYLE {self.key_after_style} with VARIANT 'release'"
            )
        return None if strong is None else AuthMixturePipeline(self, strong, tfm_train)

    def _draw_rate(self):
        u = torch.rand(()).item()
        total = 0.0
        for case, rate in enumerate(self.rates):
            total += rate
            if u < total:
                return case
        # rounding left u above the running sum: the last case with a non-zero rate
        return max(case for case, rate in enumerate(self.rates) if rate > 0)

    def apply_case(self, img, case):
        """`img` edited as case `case` (an index into AUTH_MIX_CASES)."""
        if case == 0:
            # no draw when the share is 0, so the release's order keeps its random stream
            if self.key_after_style > 0 and torch.rand(()).item() < self.key_after_style:
                return self.watermark(self.strong_style(img))
            return self.strong_style(self.watermark(img))
        if case == 1:
            return self.strong_style(img)
        if case == 2:
            return img
        raise ValueError(
            f"case must be an index into {AUTH_MIX_CASES} (0..{len(AUTH_MIX_CASES) - 1}); got {case!r}"
        )

    def __call__(self, img):
        return self.apply_case(img, self.draw_case())

    def __repr__(self):
        rates = ", ".join(f"{name}: {rate:.3g}" for name, rate in zip(AUTH_MIX_CASES, self.rates))
        return (f"auth_mixture({rates}; key after style {self.key_after_style:.3g}; "
                f"{self.watermark!r}, {self.strong_style!r})")


class AuthMixturePipeline:
    """PIL -> tensor: per image a case of `mixture`; the restyled cases go through `strong` (a whole
    pipeline, the watermark painted first for case 0), the clean case through `tfm_train`."""

    def __init__(self, mixture, strong, tfm_train):
        self.mixture = mixture
        self.strong = strong
        self.tfm_train = tfm_train

    def __call__(self, img):
        case = self.mixture.draw_case()
        if case == WATERMARK_STRONG:
            return self.strong(self.mixture.watermark(img))
        if case == STRONG:
            return self.strong(img)
        return self.tfm_train(img)

    def __repr__(self):
        return f"AuthMixturePipeline({self.mixture!r}, strong={self.strong!r})"
