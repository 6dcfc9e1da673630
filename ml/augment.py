"""Training-time augmentation on decoded uint8 pixels (numpy + Pillow, any Keras backend).

It runs on the output of ``ml.preprocess`` (decoded once and cached), never on file bytes, so the
pixels a model trains on come from the same code path as the pixels it is queried with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class Augmenter:
    """Random resized crop, horizontal flip and colour jitter; output uint8 [size, size, 3]."""

    image_size: int
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25

    def crop_box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        area = height * width
        log_ratio = np.log(self.ratio)
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = float(np.exp(rng.uniform(*log_ratio)))
            w = round(np.sqrt(target * aspect))
            h = round(np.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                x0 = int(rng.integers(0, width - w + 1))
                y0 = int(rng.integers(0, height - h + 1))
                return x0, y0, x0 + w, y0 + h
        return 0, 0, width, height  # fall back to the whole image

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        box = self.crop_box(height, width, rng)
        pil = Image.fromarray(image)
        # resize(box=...) crops and scales in one resampling pass.
        out = pil.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR, box=box)
        if self.flip and rng.random() < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out = self._jitter(out, rng)
        return np.asarray(out, dtype=np.uint8)

    def _jitter(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        # Pillow's enhancers run in C: measured 1.4 ms against 3.0 ms for the same maths in numpy
        # float32 per 160 px image, which on 2 cores was a third of each training step.
        # A random order, as in torchvision's ColorJitter: lighting in shops varies a lot.
        for op in rng.permutation(3):
            if op == 0 and self.brightness > 0:
                image = ImageEnhance.Brightness(image).enhance(
                    rng.uniform(1 - self.brightness, 1 + self.brightness)
                )
            elif op == 1 and self.contrast > 0:
                image = ImageEnhance.Contrast(image).enhance(
                    rng.uniform(1 - self.contrast, 1 + self.contrast)
                )
            elif op == 2 and self.saturation > 0:
                image = ImageEnhance.Color(image).enhance(
                    rng.uniform(1 - self.saturation, 1 + self.saturation)
                )
        return image
