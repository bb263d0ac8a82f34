"""Training patches: sampling around tumour and broad augmentation."""

from __future__ import annotations

import math

import numpy as np

from rgcds.training.segmentation.data import PATCH, Case

#: Channel index (T1, T1c, T2, FLAIR) -> the channel that stands in for it when missing.
_NEAREST = {0: 1, 2: 3, 3: 2}


def drop_channel(img: np.ndarray, rng: np.random.Generator) -> int:
    """Replace one of T1, T2, FLAIR of ``img`` (4, ...) in place by its stand-in, as the
    pipeline's "nearest" substitution fills a missing sequence (T1 <- T1c, T2 <- FLAIR,
    FLAIR <- T2; :mod:`rgcds.pipeline.stages.channels`); the T1c is never dropped.

    Returns the index of the replaced channel."""
    missing = int(rng.choice(list(_NEAREST)))
    img[missing] = img[_NEAREST[missing]]
    return missing


class PatchSampler:
    """Draws augmented training patches from cases held in memory."""

    def __init__(self, cases: list[Case], rng: np.random.Generator, patch: int = PATCH,
                 tumour_fraction: float = 0.67, strip_fraction: float = 0.3,
                 channel_dropout: float = 0.0) -> None:
        import torch

        self.torch = torch
        self.cases = cases
        self.rng = rng
        self.patch = patch
        self.tumour_fraction = tumour_fraction
        self.strip_fraction = strip_fraction
        self.channel_dropout = channel_dropout
        self.stacks = []
        self.fg: list[list[np.ndarray]] = []
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []
        for case in cases:
            stack = np.concatenate(
                [case.images, case.brain[None].astype(np.float32),
                 case.labels[None].astype(np.float32)]
            )
            self.stacks.append(torch.from_numpy(stack)[None])
            self.fg.append([np.argwhere(case.labels == k) for k in (1, 2, 3)])
            coords = np.argwhere(case.brain)
            pick = coords[rng.choice(len(coords), size=min(20000, len(coords)), replace=False)]
            self.samples.append((pick, case.images[:, pick[:, 0], pick[:, 1], pick[:, 2]]))

    def _bias(self, coords: np.ndarray, shape: tuple[int, ...], coef: np.ndarray) -> np.ndarray:
        # coords (..., 3) voxel -> [-1, 1]; quadratic polynomial field, exp of it.
        u = [2.0 * coords[..., i] / max(shape[i] - 1, 1) - 1.0 for i in range(3)]
        terms = [u[0], u[1], u[2], u[0] * u[1], u[0] * u[2], u[1] * u[2],
                 u[0] ** 2, u[1] ** 2, u[2] ** 2]
        field = sum(c * t for c, t in zip(coef, terms, strict=True))
        return np.exp(np.asarray(field, dtype=np.float32))

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented patch: image ``(4, P, P, P)`` float32, labels ``(P, P, P)`` int64."""
        torch = self.torch
        rng = self.rng
        i = int(rng.integers(len(self.cases)))
        case = self.cases[i]
        shape = case.labels.shape
        present = [k for k in range(3) if len(self.fg[i][k])]
        if present and rng.random() < self.tumour_fraction:
            k = present[int(rng.integers(len(present)))]
            centre = self.fg[i][k][int(rng.integers(len(self.fg[i][k])))].astype(np.float64)
            centre += rng.uniform(-12, 12, 3)
        elif rng.random() < 0.3:  # anywhere in the head's box: background and skull too
            centre = rng.uniform(0, 1, 3) * (np.array(shape, dtype=np.float64) - 1)
        else:
            brain = self.samples[i][0]
            centre = brain[int(rng.integers(len(brain)))].astype(np.float64)
        # spatial: rotation (+-15 deg per axis), scale 0.85-1.2, flips on every axis
        angles = np.deg2rad(rng.uniform(-15, 15, 3)) if rng.random() < 0.5 else np.zeros(3)
        rot = _rotation(angles)
        scale = rng.uniform(0.85, 1.2) if rng.random() < 0.4 else 1.0
        flips = rng.random(3) < 0.5
        p = self.patch
        axis = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
        grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)  # (p,p,p,3) zyx
        grid = grid * np.where(flips, -1.0, 1.0)
        src = grid @ (rot * scale).T + centre  # voxel coords zyx
        norm = np.empty_like(src)
        for a in range(3):
            norm[..., a] = 2.0 * src[..., a] / max(shape[a] - 1, 1) - 1.0
        g = torch.from_numpy(norm[..., ::-1].copy()).float()[None]  # grid_sample wants xyz
        stack = self.stacks[i]
        sampled = torch.nn.functional.grid_sample(
            stack[:, :5], g, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        lab = torch.nn.functional.grid_sample(
            stack[:, 5:], g, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
        img = sampled[:4].numpy().copy()
        brain_patch = sampled[4].numpy() > 0.5
        labels = lab.numpy().astype(np.int64)

        s_coords, s_values = self.samples[i]
        s_values = s_values.copy()
        strip = rng.random() < self.strip_fraction
        if strip and rng.random() < 0.5:  # a brain extractor's mask is a voxel off either way
            from scipy import ndimage

            morph = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
            brain_patch = morph(brain_patch)
        for c in range(4):
            vals, ref = img[c], s_values[c]
            if rng.random() < 0.5:  # bias field
                coef = rng.normal(0, 0.12, 9)
                vals = vals * self._bias(src, shape, coef)
                ref = ref * self._bias(s_coords.astype(np.float64), shape, coef)
            if rng.random() < 0.4:  # gamma
                gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.5)))
                top = max(float(np.percentile(ref, 99.5)), 1e-6)
                vals = top * np.power(np.clip(vals / top, 0, None), gamma)
                ref = top * np.power(np.clip(ref / top, 0, None), gamma)
            if strip:
                vals = np.where(brain_patch, vals, 0.0)
            mean, std = float(ref.mean()), max(float(ref.std()), 1e-6)
            vals = (vals - mean) / std
            if rng.random() < 0.3:  # residual scale and shift (mask / scanner differences)
                vals = vals * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
            img[c] = vals
        if rng.random() < self.channel_dropout:
            drop_channel(img, rng)
        if rng.random() < 0.2:  # blur
            from scipy.ndimage import gaussian_filter

            sigma = rng.uniform(0.4, 1.1)
            for c in range(4):
                img[c] = gaussian_filter(img[c], sigma)
        if rng.random() < 0.2:  # thick slices along one axis: down then up
            ax = int(rng.integers(3))
            factor = rng.uniform(1.5, 3.0)
            t = torch.from_numpy(img)[None]
            size = [p, p, p]
            size[ax] = max(4, round(p / factor))
            low = torch.nn.functional.interpolate(t, size=size, mode="trilinear")
            img = torch.nn.functional.interpolate(low, size=(p, p, p), mode="trilinear")[0].numpy()
        if rng.random() < 0.3:  # noise
            img = img + rng.normal(0, rng.uniform(0.02, 0.15), img.shape).astype(np.float32)
        return np.ascontiguousarray(img, dtype=np.float32), labels


def _rotation(angles: np.ndarray) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return np.asarray(rx @ ry @ rz)
