"""Renderer of the synthetic benchmark: shapes drawn in four visual styles, with numpy only.

Every shape is a signed distance field (negative inside) in its own unit frame, so fills, outlines,
shadows and wobbly strokes all come from the same field, anti-aliased for free by a one-pixel ramp.
Images of one (class, domain) pair are rendered as one batch: no per-pixel Python loop.
"""
import numpy as np

__all__ = ["CLASSNAMES", "DOMAINS", "RENDER_VERSION", "render_images"]

# Bump whenever the pictures change: it is part of the benchmark's marker and the tiny CLIP's recipe.
RENDER_VERSION = 1

CLASSNAMES = (
    "circle", "square", "triangle", "star", "cross",
    "ring", "diamond", "arrow", "heart", "crescent",
)
DOMAINS = ("photo", "clipart", "sketch", "painting")


# ----------------------------------------------------------------------------------------------
# Shapes: signed distance in the shape's unit frame (the shape spans about [-1, 1]).
# ----------------------------------------------------------------------------------------------
def _regular_star(points, outer, inner):
    angles = np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _heart_outline(n=32):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y + 2.5], axis=1) / 16.5


def _crescent_outline(outer=0.9, bite_offset=0.5, bite=0.75, n_arc=20):
    """Outer arc between the horns, then the bite's arc back: a polygon, so distances stay exact."""
    horn_x = (bite_offset ** 2 + outer ** 2 - bite ** 2) / (2 * bite_offset)
    horn_y = np.sqrt(outer ** 2 - horn_x ** 2)
    outer_from = np.arctan2(horn_y, horn_x)
    t_outer = np.linspace(outer_from, 2 * np.pi - outer_from, n_arc)
    bite_from = np.arctan2(horn_y, horn_x - bite_offset)
    t_bite = np.linspace(2 * np.pi - bite_from, bite_from, n_arc)[1:-1]
    return np.concatenate([
        np.stack([outer * np.cos(t_outer), outer * np.sin(t_outer)], axis=1),
        np.stack([bite_offset + bite * np.cos(t_bite), bite * np.sin(t_bite)], axis=1),
    ])


_POLYGONS = {
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    "triangle": _regular_star(3, 1.0, 0.5)[::2] + np.array([0.0, -0.2]),
    "star": _regular_star(5, 1.0, 0.42),
    "cross": np.array([[-0.3, -0.9], [0.3, -0.9], [0.3, -0.3], [0.9, -0.3], [0.9, 0.3], [0.3, 0.3],
                       [0.3, 0.9], [-0.3, 0.9], [-0.3, 0.3], [-0.9, 0.3], [-0.9, -0.3], [-0.3, -0.3]]),
    "diamond": np.array([[0.0, -1.0], [0.55, 0.0], [0.0, 1.0], [-0.55, 0.0]]),
    "arrow": np.array([[-0.95, -0.2], [0.1, -0.2], [0.1, -0.6], [0.95, 0.0],
                       [0.1, 0.6], [0.1, 0.2], [-0.95, 0.2]]),
    "heart": _heart_outline(),
    "crescent": _crescent_outline(),
}
# Shapes whose upright pose is part of their identity only turn a little.
_MAX_ROTATION = {"heart": np.pi / 5}


def _polygon_sdf(points, vertices):
    """Signed distance of points [..., 2] to a closed polygon (even-odd rule for the sign)."""
    v0 = vertices.astype(np.float32)
    edge = np.roll(v0, -1, axis=0) - v0
    inv_len2 = 1.0 / (edge ** 2).sum(-1)
    horizontal = edge[:, 1] == 0
    slope = np.where(horizontal, 0.0, edge[:, 0] / np.where(horizontal, 1.0, edge[:, 1])).astype(np.float32)
    rx = points[..., 0:1] - v0[:, 0]                                  # [..., K]
    ry = points[..., 1:2] - v0[:, 1]
    t = np.clip((rx * edge[:, 0] + ry * edge[:, 1]) * inv_len2, 0.0, 1.0)
    dist = np.sqrt(((rx - t * edge[:, 0]) ** 2 + (ry - t * edge[:, 1]) ** 2).min(-1))
    # A horizontal ray to +x crosses edge k when the point's y lies in the edge's half-open y range.
    straddles = (ry >= 0) != (ry >= edge[:, 1])
    crossings = (straddles & (rx < ry * slope)).sum(-1)
    return np.where(crossings % 2 == 1, -dist, dist)


def _shape_sdf(classname, q):
    r = np.sqrt((q ** 2).sum(-1))
    if classname == "circle":
        return r - 0.85
    if classname == "ring":
        return np.abs(r - 0.68) - 0.24
    return _polygon_sdf(q, _POLYGONS[classname])


# ----------------------------------------------------------------------------------------------
# Small vectorised helpers.
# ----------------------------------------------------------------------------------------------
def _smooth_noise(rng, n, size, cells, channels):
    """Random values on a coarse grid, bilinearly upsampled to [n, size, size, channels]."""
    coarse = rng.random((n, cells, cells, channels), dtype=np.float32)
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * (cells - 1)
    lo = np.minimum(pos.astype(int), cells - 2) if cells > 1 else np.zeros(size, int)
    frac = pos - lo
    interp = np.zeros((size, cells), np.float32)
    interp[np.arange(size), lo] = 1 - frac
    interp[np.arange(size), np.minimum(lo + 1, cells - 1)] += frac
    rows = np.einsum("yi,nijc->nyjc", interp, coarse)
    return np.einsum("nyjc,xj->nyxc", rows, interp)


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; inputs broadcast, output [..., 3] in [0, 1]."""
    h, s, v = np.broadcast_arrays(np.asarray(h, np.float32), np.asarray(s, np.float32),
                                  np.asarray(v, np.float32))
    k = (np.array([5.0, 3.0, 1.0], np.float32) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _coverage(sdf_px, softness=1.0):
    """Anti-aliased coverage of the region sdf < 0, given the distance in pixels."""
    return np.clip(0.5 - sdf_px / softness, 0.0, 1.0)[..., None]


def _over(base, colour, alpha):
    return base * (1.0 - alpha) + colour * alpha


class _Layout:
    """Per-image pose: evaluates the class's distance field (in pixels) for any offset or wobble."""

    def __init__(self, rng, classname, n, size):
        self.classname, self.n, self.size = classname, n, size
        self.scale = rng.uniform(0.42, 0.7, n).astype(np.float32)          # radius, in half-images
        limit = 0.95 - self.scale
        self.centre = (rng.uniform(-1, 1, (n, 2)) * limit[:, None] * 0.6).astype(np.float32)
        max_rot = _MAX_ROTATION.get(classname, np.pi)
        self.angle = rng.uniform(-max_rot, max_rot, n).astype(np.float32)
        grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
        # Image coordinates with y pointing up: [size, size, 2].
        self.coords = np.stack(np.meshgrid(grid, -grid, indexing="xy"), axis=-1)

    def local(self, offset=0.0):
        """Pixel positions in each shape's unit frame: [n, size, size, 2]."""
        d = self.coords[None] - self.centre[:, None, None, :] - offset
        cos, sin = np.cos(self.angle)[:, None, None], np.sin(self.angle)[:, None, None]
        x = (cos * d[..., 0] + sin * d[..., 1]) / self.scale[:, None, None]
        y = (-sin * d[..., 0] + cos * d[..., 1]) / self.scale[:, None, None]
        return np.stack([x, y], axis=-1)

    def sdf_px(self, offset=0.0, wobble=None):
        """Signed distance in pixels; `wobble` [n, size, size] is added in unit-frame units."""
        sdf = _shape_sdf(self.classname, self.local(offset))
        if wobble is not None:
            sdf = sdf + wobble
        return sdf * self.scale[:, None, None] * self.size / 2


# ----------------------------------------------------------------------------------------------
# Domain styles: each returns float images [n, size, size, 3] in [0, 1].
# ----------------------------------------------------------------------------------------------
def _photo(rng, lay):
    n, size = lay.n, lay.size
    bg_hue = rng.random(n).astype(np.float32)
    field = _smooth_noise(rng, n, size, 4, 3)
    grain = _smooth_noise(rng, n, size, max(4, size // 4), 1)
    bg = _hsv_to_rgb(bg_hue[:, None, None], 0.25 + 0.35 * field[..., 0], 0.35 + 0.5 * field[..., 1])
    bg = bg * (0.9 + 0.2 * grain)
    shadow_offset = np.array([0.06, -0.08], np.float32)
    shadow = _coverage(lay.sdf_px(offset=shadow_offset), softness=3.0)
    img = bg * (1 - 0.45 * shadow)
    hue = (bg_hue + rng.uniform(0.3, 0.7, n)).astype(np.float32) % 1
    fill = _hsv_to_rgb(hue, rng.uniform(0.55, 0.95, n), rng.uniform(0.75, 1.0, n))[:, None, None, :]
    # Light from the upper left and a darker rim: a rounded, lit object.
    q = lay.local()
    light = np.clip(0.85 + 0.3 * (-0.6 * q[..., 0] + 0.8 * q[..., 1]), 0.45, 1.2)[..., None]
    sdf = lay.sdf_px()
    rim = np.clip(-sdf / (0.12 * size), 0.0, 1.0)[..., None]
    shaded = fill * light * (0.7 + 0.3 * rim)
    return _over(img, shaded, _coverage(sdf))


_CLIPART_PALETTE = np.array([
    [0.9, 0.1, 0.1], [0.1, 0.4, 0.9], [0.1, 0.7, 0.2], [1.0, 0.8, 0.1], [0.6, 0.2, 0.8],
    [1.0, 0.5, 0.1], [0.1, 0.75, 0.85], [0.95, 0.4, 0.7],
], np.float32)


def _clipart(rng, lay):
    n, size = lay.n, lay.size
    tint = _hsv_to_rgb(rng.random(n), rng.uniform(0, 0.08, n) * (rng.random(n) < 0.3), 1.0)
    img = np.broadcast_to(tint[:, None, None, :], (n, size, size, 3)).copy()
    fill = _CLIPART_PALETTE[rng.integers(0, len(_CLIPART_PALETTE), n)][:, None, None, :]
    sdf = lay.sdf_px()
    img = _over(img, fill, _coverage(sdf))
    width = (size / 24 * rng.uniform(0.8, 1.2, n) * lay.scale / 0.56 + 1.0).astype(np.float32)[:, None, None]
    return _over(img, 0.05, _coverage(np.abs(sdf) - width / 2))


def _sketch(rng, lay):
    n, size = lay.n, lay.size
    paper = rng.uniform(0.9, 0.98, n).astype(np.float32)[:, None, None, None]
    img = paper + 0.03 * (_smooth_noise(rng, n, size, size // 2, 1) - 0.5)
    ink = rng.uniform(0.05, 0.3, n).astype(np.float32)[:, None, None, None]
    width = size / 40 * rng.uniform(0.8, 1.4, n).astype(np.float32)[:, None, None]
    # Hand-drawn look: a wobbly stroke, sometimes doubled by a second, slightly offset pass.
    for stroke in range(2):
        wobble = 0.08 * (_smooth_noise(rng, n, size, 6, 1)[..., 0] - 0.5)
        offset = rng.normal(0, 0.025, (n, 1, 1, 2)).astype(np.float32)
        line = _coverage(np.abs(lay.sdf_px(offset=offset, wobble=wobble)) - width / 2)
        if stroke == 1:
            line = line * (rng.random(n) < 0.5)[:, None, None, None] * 0.7
        img = _over(img, ink, line)
    return np.broadcast_to(img, (n, size, size, 3))


def _painting(rng, lay, blobs=10):
    n, size = lay.n, lay.size
    bg_hue = rng.random(n).astype(np.float32)
    img = _hsv_to_rgb(bg_hue[:, None, None], 0.4, 0.85) * (0.75 + 0.4 * _smooth_noise(rng, n, size, 3, 3))
    coords = lay.coords[None]
    # Pastel dabs of colour behind the object.
    for _ in range(blobs):
        centre = rng.uniform(-1.1, 1.1, (n, 1, 1, 2)).astype(np.float32)
        radius = rng.uniform(0.12, 0.35, (n, 1, 1)).astype(np.float32)
        dist_px = (np.sqrt(((coords - centre) ** 2).sum(-1)) - radius) * size / 2
        colour = _hsv_to_rgb(rng.random(n), rng.uniform(0.2, 0.55, n), rng.uniform(0.7, 1.0, n))
        img = _over(img, colour[:, None, None, :], 0.6 * _coverage(dist_px, softness=3.0))
    # The object: a ragged brush edge, saturated dabbed colour, and lighter strokes of the same hue.
    wobble = 0.14 * (_smooth_noise(rng, n, size, 8, 1)[..., 0] - 0.5)
    mask = _coverage(lay.sdf_px(wobble=wobble), softness=1.5)
    hue = ((bg_hue + rng.uniform(0.25, 0.75, n)) % 1).astype(np.float32)
    base = _hsv_to_rgb(hue[:, None, None], 0.9, 0.45 + 0.45 * _smooth_noise(rng, n, size, 10, 1)[..., 0])
    direction = rng.normal(size=(n, 1, 1, 2)).astype(np.float32)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    phase = (lay.coords[None] * direction).sum(-1) * size * 0.6 + rng.uniform(0, 6.3, (n, 1, 1))
    strokes = (np.sin(phase) > 0.6)[..., None] * (rng.random((n, 1, 1, 1)) < 0.5)
    accent = _hsv_to_rgb((hue + 0.08) % 1, 0.6, 1.0)[:, None, None, :]
    paint = _over(base, accent, 0.5 * strokes)
    img = _over(img, paint, mask)
    return img + rng.normal(0, 0.04, img.shape).astype(np.float32)


_STYLES = {"photo": _photo, "clipart": _clipart, "sketch": _sketch, "painting": _painting}


def render_images(classname, domain, n, rng, size=40):
    """Render `n` images of one class in one domain style as uint8 [n, size, size, 3].

    Every random number comes from `rng` (a `numpy.random.Generator`), so the same generator state
    gives the same pixels; callers keep separate generators for separate streams (benchmark files
    vs. the tiny CLIP's own pretraining pool).
    """
    if classname not in CLASSNAMES:
        raise ValueError(f"Unknown toy class {classname!r}; expected one of {list(CLASSNAMES)}")
    if domain not in _STYLES:
        raise ValueError(f"Unknown toy domain {domain!r}; expected one of {list(DOMAINS)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng)}")
    if int(size) < 8:
        raise ValueError(f"Toy image size must be at least 8 px, got {size}")
    n, size = int(n), int(size)
    if n <= 0:
        return np.zeros((0, size, size, 3), np.uint8)
    layout = _Layout(rng, classname, n, size)
    img = _STYLES[domain](rng, layout)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
