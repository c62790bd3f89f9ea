"""Insertion and Deletion (Petsiuk et al., "RISE", BMVC 2018), as SPEC "Insertion and deletion".

The map ranks all C*H*W values (channels separately), descending, ties broken by the higher
flat index. In `n_steps` steps the next `ceil(C*H*W / n_steps)` values (672 for 3x224x224)
move: deletion from the image to the black substrate, insertion from the substrate to the
image. The curve is the probability of the class the model predicts on the clean image, at
steps 0..n_steps; a method's score is the AUC of the curve averaged over images.
"""
from __future__ import annotations

import math

import torch

from .core.common import checked_classes, row_chunks
from .errors import SaliencyError

GAMES = ("ins", "del")
N_STEPS = 224


def default_batch_size(device) -> int:
    """Perturbed images per forward: the published 100 on a GPU; on a CPU small batches keep the
    activations in cache (efficientnet_lite0 on 2 cores: 15 ms/row at 4, 20 at 8, 35 at 100)."""
    return 4 if torch.device(device).type == "cpu" else 100


def whole_curves(rows: int, n_steps: int = N_STEPS) -> int:
    """The largest batch <= rows that holds whole curves (a multiple of n_steps + 1), so that no
    forward runs part-empty at the end of each group of images; rows itself below one curve."""
    steps = n_steps + 1
    return rows // steps * steps if rows >= steps else rows


def descending_rank(maps: torch.Tensor) -> torch.Tensor:
    """rank[i, j] = position of flat value j in image i's descending order (ties: higher j first).

    This is the order `np.flip(np.argsort(a, kind='stable'))` gives.
    """
    flat = maps.reshape(len(maps), -1)
    order = torch.sort(flat, dim=1, stable=True).indices.flip(1)
    rank = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return rank.scatter_(1, order, positions)


def auc(curve) -> float:
    """Trapezoid AUC over unit x-range of a 1-D curve: (sum - first/2 - last/2) / (n - 1)."""
    curve = torch.as_tensor(curve, dtype=torch.float64)
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))


class InsertionDeletion:
    """Insertion and deletion curves of a probability model, built on the model's device.

    `curves(images, maps)` returns {"ins": [n_steps+1, N], "del": [n_steps+1, N]}. Perturbed
    images are made batch by batch from one sort per image, never in a Python loop over
    images or steps.
    """

    def __init__(self, probability_model, n_steps: int = N_STEPS, batch_size: int = 100):
        self.model = probability_model
        self.n_steps = n_steps
        self.batch_size = batch_size

    @torch.inference_mode()
    def curves(self, images: torch.Tensor, maps: torch.Tensor, progress=None, classes=None) -> dict:
        """classes: [N] class scored per image; None: the model's argmax on the clean image."""
        if maps.shape != images.shape:
            raise SaliencyError(f"maps {tuple(maps.shape)} and images {tuple(images.shape)} differ in shape")
        device = next(self.model.parameters()).device
        images = images.to(device, torch.float32)
        if classes is None:
            classes = torch.cat([self.model(images[s]).argmax(1) for s in row_chunks(len(images), self.batch_size)])
        else:
            classes = checked_classes(classes, len(images), device)
        return {game: self._game(game, images, maps, classes, progress).T.cpu() for game in GAMES}

    def _game(self, game, images, maps, classes, progress):
        """[N, n_steps+1] scores of one game."""
        n, steps = len(images), self.n_steps + 1
        size = images[0].numel()
        moved_per_step = math.ceil(size / self.n_steps)
        # rank a group of images at a time, sized so that its (image, step) pairs fill whole batches
        group = min(n, max(1, math.lcm(steps, self.batch_size) // steps), 64)
        scores = []
        for images_part in row_chunks(n, group):
            x = images[images_part].reshape(-1, size)
            rank = descending_rank(maps[images_part].to(images.device)).to(torch.int32)
            pair_image = torch.arange(len(x), device=x.device).repeat_interleave(steps)
            pair_moved = torch.arange(steps, device=x.device).repeat(len(x)) * moved_per_step
            for part in row_chunks(len(pair_image), self.batch_size):
                img = pair_image[part]
                moved = rank[img] < pair_moved[part, None]
                keep = ~moved if game == "del" else moved
                probs = self.model((x[img] * keep).view(-1, *images.shape[1:]))
                scores.append(probs.gather(1, classes[images_part][img, None]).squeeze(1))
                if progress is not None:
                    progress.update(len(img))
        return torch.cat(scores).view(n, steps)
