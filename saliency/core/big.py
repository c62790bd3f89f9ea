"""Boundary-based Integrated Gradients (BIG).

Wang, Wang, Ramkumar, Fredrikson, Mardziel and Datta, "Robust Models Are More Interpretable
Because Attributions Look Normal", ICML 2022. docs/PROTOCOL.md, table row "big".

1. Boundary search: one FGSM-style attack per epsilon (in the given order), each `num_steps`
   sign steps of size `alpha` that ascend CE(p, target), where p is already a probability
   vector (so the loss applies log-softmax a second time). As in the published attack, the
   step direction is the sign of the input gradient summed over all steps so far (the
   published loop never clears the input's `.grad`). Each step is clipped to the box of
   half-width eps/255 around x and to [0, 1]. An attack succeeds when the argmax at its final
   point differs from target. Each image takes the first successful attack's point, else the
   first attack's point.
2. Integrated Gradients of p_target from that boundary point to x, with captum's
   'riemann_trapezoid' rule (alphas linspace(0, 1, n), weights 1/n with the end weights halved).

All attacks of all images run as rows of one batch. Attacks whose box cannot bind (eps/255 above
the farthest the steps can reach, num_steps * alpha) are the same computation, so they run once
and share their result; at the defaults (reach 0.05 < 36/255) all seven attacks are one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import output_grads, per_image_plan, row_chunks, rows_per_call, trapezoid_rule
from .params import COUNT, POSITIVE, STEPS, NonEmptyList, Param, protocol

DEFAULT_MAX_ROWS = 64
EPSILONS = (36, 64, 0.3 * 255, 0.5 * 255, 0.7 * 255, 0.9 * 255, 1.1 * 255)
# the boundary search's parameters, BIG's first three
BOUNDARY_PARAMS = (Param("epsilons", EPSILONS, NonEmptyList(POSITIVE)), Param("num_steps", 50, COUNT),
                   Param("alpha", 0.001, POSITIVE))


@protocol("BIG", *BOUNDARY_PARAMS, Param("gradient_steps", 50, STEPS))
def big(
    model,
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    epsilons: tuple,
    num_steps: int,
    alpha: float,
    gradient_steps: int,
    max_rows: int | None = None,
) -> torch.Tensor:
    """BIG maps, float32, shaped like `images`.

    model: probability model on [0,1] images. epsilons: attack box half-widths in 1/255 units,
    tried in this order. max_rows bounds the rows per model call (whole images per call where
    they fit, so an image's numbers do not depend on its neighbours).
    """
    images = images.detach()
    target = target.to(images.device).long().view(-1)
    points, _, _ = boundary_points(model, images, target, epsilons=epsilons, num_steps=num_steps, alpha=alpha,
                                   max_rows=max_rows)
    return integrated_gradients(model, images, points, target, gradient_steps, max_rows).float()


@protocol("BIG", *BOUNDARY_PARAMS)
def boundary_points(model, images, target, *, epsilons, num_steps, alpha, max_rows=None):
    """(points, chosen, success) of the boundary search.

    points: [N,...] the selected attack's final point per image; chosen: [N] index into
    `epsilons` of that attack (0 when none succeeded); success: [N] whether one succeeded.
    """
    images = images.detach()
    target = target.to(images.device).long().view(-1)
    bounds, group = _attack_groups(epsilons, int(num_steps), float(alpha), images.dtype)
    u = len(bounds)
    bound_rows = torch.tensor(bounds, dtype=images.dtype, device=images.device)

    finals, wins = [], []
    for part in row_chunks(len(images), max(1, rows_per_call(max_rows, images.device, DEFAULT_MAX_ROWS) // u)):
        x, t = images[part], target[part]
        k = len(x)
        end, success = _attack(model, x.repeat_interleave(u, dim=0), t.repeat_interleave(u),
                               bound_rows.repeat(k).view(-1, *[1] * (x.dim() - 1)), int(num_steps), float(alpha))
        finals.append(end.view(k, u, *x.shape[1:]))
        wins.append(success.view(k, u))
    finals, wins = torch.cat(finals), torch.cat(wins)

    # per epsilon (in the given order): did its attack succeed?
    per_eps = wins[:, group]  # [N, len(epsilons)]
    success = per_eps.any(dim=1)
    chosen = torch.where(success, per_eps.float().argmax(dim=1), torch.zeros_like(success, dtype=torch.long))
    rows = torch.as_tensor(group, device=images.device)[chosen]
    points = finals[torch.arange(len(images), device=images.device), rows]
    return points, chosen, success


def _attack_groups(epsilons, num_steps, alpha, dtype):
    """Distinct attacks to run and, per epsilon, which of them it is.

    A box wider than the farthest the sign steps can go (num_steps * alpha, plus a margin for
    rounding) never clips, so every such epsilon gives the same trajectory; they run once,
    bounded by the first of them.
    """
    reach = num_steps * alpha + num_steps * 8 * torch.finfo(dtype).eps
    bounds, group, index = [], [], {}
    for eps in epsilons:
        b = float(eps) / 255
        key = "unbounded" if b > reach else b
        if key not in index:
            index[key] = len(bounds)
            bounds.append(b)
        group.append(index[key])
    return bounds, group


def _attack(model, data, target, bound, num_steps, alpha):
    """The sign-step attack on every row; returns its final points and argmax != target there."""
    state = data.clone()
    summed = None
    for _ in range(num_steps):
        _, (grad,) = output_grads(lambda z: -F.log_softmax(model(z), dim=1), state, target)
        summed = grad if summed is None else summed + grad
        step = (state + alpha * summed.sign()) - data
        state = (data + torch.clamp(step, -bound, bound)).clamp(0, 1)
    with torch.no_grad():
        success = model(state).argmax(dim=1) != target
    return state, success


def integrated_gradients(model, images, baselines, target, steps, max_rows=None):
    """IG of model(.)[target] from `baselines` to `images`, captum's 'riemann_trapezoid' rule."""
    dtype, device = images.dtype, images.device
    alphas, weights = (w.to(dtype=dtype, device=device) for w in trapezoid_rule(steps))
    target = target.to(device).long().view(-1)
    plan = per_image_plan(len(images), len(alphas), rows_per_call(max_rows, device, DEFAULT_MAX_ROWS))

    total = torch.zeros_like(images)
    lead = [1] * (images.dim() - 1)
    for part, s in plan:
        x, b = images[part], baselines[part]
        a = alphas[s]
        k, m = len(x), len(a)
        path = b.unsqueeze(1) + a.view(1, m, *lead) * (x - b).unsqueeze(1)
        _, (grad,) = output_grads(model, path.flatten(0, 1), target[part].repeat_interleave(m))
        total[part] += (grad.view(k, m, -1) * weights[s].view(1, m, 1)).sum(dim=1).view_as(x)
    return total * (images - baselines)
