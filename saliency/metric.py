"""Insertion and Deletion (Petsiuk et al., "RISE", BMVC 2018), as docs/PROTOCOL.md "Insertion and deletion".

The map ranks all C*H*W values (channels separately), descending, ties broken by the higher
flat index. In `n_steps` steps the next `ceil(C*H*W / n_steps)` values (672 for 3x224x224)
move: deletion from the image to the black substrate, insertion from the substrate to the
image. The curve is the probability of the class the model predicts on the clean image, at
steps 0..n_steps; a method's score is the AUC of the curve averaged over images.

Options (docs/PROTOCOL.md "Metric variants" and "As published"; the defaults are the paper's protocol):

- substrate: "black" (zeros) | "blur" (each channel convolved with the RISE evaluation's 11x11
  Gaussian kernel of sigma 5, see gaussian_kernel, zero padding: RISE's insertion substrate) | "mean" (each
  channel's mean over the image). Both games move values between the image and the substrate;
  a perturbed image is `image * keep + substrate * (1 - keep)`.
- order: "channel" (every value of the C x H x W map ranked) | "pixel" (the H x W pixels ranked
  by the sum of their channels' attributions, whole pixels moved, `ceil(H*W / n_steps)` a step).
- ties: "stable" (higher flat index first) | "numpy" (the published CausalMetric's order:
  `np.flip(np.argsort(map))` with NumPy's default, unstable, sort, on the CPU in float32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .core.common import checked_classes, row_chunks
from .errors import SaliencyError


@dataclass(frozen=True)
class Game:
    """One of the two games, declared once: `key` names it in scores files (`ins`, `ins_auc`,
    `ins_curve`) and in `InsertionDeletion.curves`; `name` in results.csv's columns, the tables and
    the statistics."""
    key: str
    name: str
    higher_is_better: bool
    moved: str  # what happens to the values the map ranks first: "inserted" or "deleted"

    @property
    def title(self) -> str:
        return self.name.capitalize()

    @property
    def better(self) -> str:
        """'higher' or 'lower' (is better)."""
        return "higher" if self.higher_is_better else "lower"


INSERTION = Game("ins", "insertion", higher_is_better=True, moved="inserted")
DELETION = Game("del", "deletion", higher_is_better=False, moved="deleted")
GAMES = (INSERTION, DELETION)


def game_named(text: str) -> Game:
    """The game whose key or name is `text` ('ins' or 'insertion', 'del' or 'deletion')."""
    for game in GAMES:
        if text in (game.key, game.name):
            return game
    raise SaliencyError(f"game={text!r} is not one of {', '.join(g.key for g in GAMES)}, "
                        f"{', '.join(g.name for g in GAMES)}")

N_STEPS = 224
SUBSTRATES = ("black", "blur", "mean")
ORDERS = ("channel", "pixel")
TIES = ("stable", "numpy")
BLUR_SIZE, BLUR_SIGMA = 11, 5.0


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
    return _rank_of(torch.sort(flat, dim=1, stable=True).indices.flip(1))


def _rank_of(order: torch.Tensor) -> torch.Tensor:
    """The inverse permutation of each row: rank[i, order[i, k]] = k."""
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return rank.scatter_(1, order, positions)


def _numpy_descending_order(flat: torch.Tensor) -> torch.Tensor:
    """[N, K] positions in the published order: per row `np.flip(np.argsort(row))`, NumPy's default
    (unstable) kind, on the row as a float32 array; the tie order is whatever that sort gives."""
    rows = flat.detach().to("cpu", torch.float32).numpy()
    return torch.stack([torch.from_numpy(np.flip(np.argsort(row)).copy()) for row in rows])


def _per_pixel(maps: torch.Tensor) -> torch.Tensor:
    """[N, H*W] sums over the channels of [N, C, H, W] maps."""
    if maps.dim() != 4:
        raise SaliencyError(f"order='pixel' needs [N, C, H, W] maps, got shape {tuple(maps.shape)}")
    return maps.sum(1).reshape(len(maps), -1)


def perturbation_ranks(maps: torch.Tensor, order: str = "channel", ties: str = "stable") -> torch.Tensor:
    """rank[i, j] = step position of unit j of image i: units are the C*H*W values (order='channel')
    or the H*W pixels (order='pixel', ranked by channel sums); ties as `ties` (module docstring).
    On the maps' device."""
    _check_option("order", order, ORDERS)
    _check_option("ties", ties, TIES)
    flat = _per_pixel(maps) if order == "pixel" else maps.reshape(len(maps), -1)
    if ties == "stable":
        return descending_rank(flat)
    return _rank_of(_numpy_descending_order(flat).to(flat.device))


def perturbation_steps(maps: torch.Tensor, order: str = "channel", ties: str = "stable",
                       n_steps: int = N_STEPS) -> torch.Tensor:
    """step[i, j] = the step at which unit j of image i is moved (1-based: moved in step s and
    after). Two tie orders give the same curves wherever they give the same steps."""
    units = maps[0, 0].numel() if order == "pixel" else maps[0].numel()
    return perturbation_ranks(maps, order, ties) // math.ceil(units / n_steps) + 1


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """[size, size] float32: the RISE evaluation's kernel, a unit impulse at the centre of a
    size x size grid smoothed by a Gaussian filter of `sigma` (radius 4 sigma, reflecting at the
    grid's edges, as scipy.ndimage.gaussian_filter does). The reflected tails make it flatter
    than sampled Gaussian values (peak 0.0088 instead of 0.0120 at 11 x 11, sigma 5); it sums to 1."""
    radius = int(4 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1)
    weights = torch.exp(-0.5 * offsets.double() ** 2 / sigma**2)
    weights /= weights.sum()
    period = torch.arange(size)[:, None] + offsets[None, :]  # [size, taps] indices before reflection
    period = period % (2 * size)
    reflected = torch.where(period < size, period, 2 * size - 1 - period)
    profile = (weights[None, :] * (reflected == size // 2)).sum(dim=1)  # 1-D filter of the impulse
    return torch.outer(profile, profile).float()


def substrate_of(images: torch.Tensor, substrate: str) -> torch.Tensor:
    """The [N, C, H, W] substrate of each image (module docstring)."""
    _check_option("substrate", substrate, SUBSTRATES)
    if substrate == "black":
        return torch.zeros_like(images)
    if images.dim() != 4:
        raise SaliencyError(f"substrate={substrate!r} needs [N, C, H, W] images, got shape {tuple(images.shape)}")
    if substrate == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    channels = images.shape[1]
    kernel = gaussian_kernel().to(images).expand(channels, 1, BLUR_SIZE, BLUR_SIZE)
    return torch.nn.functional.conv2d(images, kernel, padding=BLUR_SIZE // 2, groups=channels)


def _check_option(name: str, value, allowed) -> None:
    if value not in allowed:
        raise SaliencyError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def auc(curves):
    """Trapezoid AUC over a unit x-range, in float64: (sum - first/2 - last/2) / (steps - 1).

    One curve [steps] -> a float; curves [steps, N] -> a float64 array [N], one AUC per column.
    """
    # a curve is summed by torch, columns row by row by NumPy: the orders every stored AUC was
    # computed in (they differ in the last bit on float64 data), so no number moves
    c = np.asarray(curves, dtype=np.float64) if np.ndim(curves) == 2 else torch.as_tensor(curves, dtype=torch.float64)
    area = (c.sum(0) - c[0] / 2 - c[-1] / 2) / (len(c) - 1)
    return area if c.ndim == 2 else float(area)


@dataclass(frozen=True)
class Scores:
    """Insertion and Deletion of N images: per-image AUCs (float64 [N]) and curves ([n_steps+1, N])."""
    insertion: torch.Tensor
    deletion: torch.Tensor
    insertion_curves: torch.Tensor
    deletion_curves: torch.Tensor


# how far from the probability simplex a model's rows may be and still count as probabilities
SIMPLEX_TOLERANCE = 1e-3


def _looks_like_probabilities(outputs: torch.Tensor) -> bool:
    outputs = outputs.detach().float()
    return bool((outputs >= 0).all() and ((outputs.sum(dim=1) - 1).abs() <= SIMPLEX_TOLERANCE).all())


class InsertionDeletion:
    """Insertion and deletion curves of a classifier, built on the model's device.

    `scores(images, maps)` returns every image's AUCs and curves (`Scores`); `curves(images, maps)`
    the curves alone, {"ins": [n_steps+1, N], "del": [n_steps+1, N]}. Perturbed images are made
    batch by batch from one sort per image, never in a Python loop over images or steps.
    substrate, order and ties: the module docstring (defaults: the paper's).
    """

    def __init__(self, model: torch.nn.Module, n_steps: int = N_STEPS, batch_size: int = 100, *,
                 substrate: str = "black", order: str = "channel", ties: str = "stable", softmax: bool = True):
        """
        Args:
            model: the logit model (images [N,C,H,W] in [0, 1] -> logits); the curves are the
                softmax probability of the scored class, as the protocol says. With
                softmax=False, a model that already returns probabilities.
            n_steps: steps of a curve (224: 672 values a step for 3x224x224 images).
            batch_size: perturbed images per forward pass (memory and speed only).
            substrate, order, ties: the metric variants (module docstring); defaults: the paper's.
            softmax: apply softmax to the model's outputs (default). The first forward checks
                the outputs: logits that already sum to 1, or "probabilities" that do not, are a
                SaliencyError, never an AUC outside [0, 1].
        """
        _check_option("substrate", substrate, SUBSTRATES)
        _check_option("order", order, ORDERS)
        _check_option("ties", ties, TIES)
        self.model = model
        self.softmax = softmax
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.substrate, self.order, self.ties = substrate, order, ties
        self._checked = False

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        if not self._checked:
            self._check_outputs(outputs)
            self._checked = True
        return torch.softmax(outputs, dim=1) if self.softmax else outputs

    def _check_outputs(self, outputs: torch.Tensor) -> None:
        probabilities = _looks_like_probabilities(outputs)
        if self.softmax and probabilities:
            raise SaliencyError("the model already returns probabilities (its rows sum to 1); pass the logit model, "
                                "or softmax=False")
        if not self.softmax and not probabilities:
            sums = outputs.detach().float().sum(dim=1)
            raise SaliencyError(f"softmax=False needs a model that returns probabilities, but its rows sum to "
                                f"{sums.min().item():.4g}..{sums.max().item():.4g}; pass the logit model with "
                                "softmax=True (the default)")

    @torch.inference_mode()
    def scores(self, images: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor | None = None,
               progress=None) -> Scores:
        """Every image's Insertion and Deletion AUC and curve.

        Args:
            images: [N,C,H,W] in [0, 1]; maps: attributions of the same shape (any device).
            classes: [N] class scored per image; None: the model's prediction on the clean image.
            progress: an object with update(k), told of every k perturbed images done (a tqdm bar).

        Returns:
            `Scores`: insertion and deletion AUCs (float64 [N], in [0, 1]) and their curves.
        """
        curves = self.curves(images, maps, progress=progress, classes=classes)
        ins, dels = (torch.from_numpy(np.asarray(auc(curves[game.key]))) for game in GAMES)
        return Scores(ins, dels, curves["ins"], curves["del"])

    @torch.inference_mode()
    def curves(self, images: torch.Tensor, maps: torch.Tensor, progress=None, classes=None) -> dict:
        """{"ins", "del"}: [n_steps+1, N] curves; classes: [N] class scored per image, None: the
        model's argmax on the clean image."""
        if maps.shape != images.shape:
            raise SaliencyError(f"maps {tuple(maps.shape)} and images {tuple(images.shape)} differ in shape")
        device = next(self.model.parameters()).device
        images = images.to(device, torch.float32)
        if classes is None:
            classes = torch.cat([self._probabilities(images[s]).argmax(1)
                                 for s in row_chunks(len(images), self.batch_size)])
        else:
            classes = checked_classes(classes, len(images), device)
        return {game.key: self._game(game, images, maps, classes, progress).T.cpu() for game in GAMES}

    def _game(self, game: Game, images, maps, classes, progress):
        """[N, n_steps+1] scores of one game."""
        n, steps = len(images), self.n_steps + 1
        size = images[0].numel()
        units = images[0, 0].numel() if self.order == "pixel" else size
        moved_per_step = math.ceil(units / self.n_steps)
        # rank a group of images at a time, sized so that its (image, step) pairs fill whole batches
        group = min(n, max(1, math.lcm(steps, self.batch_size) // steps), 64)
        scores = []
        for images_part in row_chunks(n, group):
            x = images[images_part].reshape(-1, size)
            rank = perturbation_ranks(maps[images_part].to(images.device), self.order, self.ties).to(torch.int32)
            if self.substrate != "black":
                base = substrate_of(images[images_part], self.substrate).reshape(-1, size)
            pair_image = torch.arange(len(x), device=x.device).repeat_interleave(steps)
            pair_moved = torch.arange(steps, device=x.device).repeat(len(x)) * moved_per_step
            for part in row_chunks(len(pair_image), self.batch_size):
                img = pair_image[part]
                moved = rank[img] < pair_moved[part, None]
                keep = moved if game is INSERTION else ~moved
                if self.order == "pixel":  # a pixel's mask for each of its channels ([C, H*W] layout)
                    keep = keep.repeat(1, size // units)
                # black keeps its original expression: the default numbers stay bitwise the same
                mixed = x[img] * keep if self.substrate == "black" else torch.where(keep, x[img], base[img])
                probs = self._probabilities(mixed.view(-1, *images.shape[1:]))
                scores.append(probs.gather(1, classes[images_part][img, None]).squeeze(1))
                if progress is not None:
                    progress.update(len(img))
        return torch.cat(scores).view(n, steps)
