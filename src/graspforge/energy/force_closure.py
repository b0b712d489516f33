"""GraspQP force-closure energy E_fc (METHOD.md section 3), batched and differentiable.

Per contact k (position p_k, outward object normal n_k), m = 4 unit friction-cone edges
``f = sqrt(1 - mu^2) (-n_k) + mu t`` with t over +-t1, +-t2 (orthonormal tangents of n_k); each edge
gives the wrench column ``[f ; tau (p_k - c) x f]`` of W (B, 6, m K), column index k m + j. Then::

    V(W)  = min_{1 <= l <= 21} 0.5 ||W l||^2 + 0.5 eps ||l||^2        (solved by solve_box_qp)
    s(W)  = geometric mean of the 6 singular values of W
    E_fc  = 2 (V(W) + 0.01) exp(-0.1 s(W))

dV/dW = W l* l*^T (Danskin): the QP is solved without autograd and V is re-evaluated with l* detached.
W is the grasp (wrench) matrix METHOD.md calls G; here it is W because G counts grasps per object
elsewhere (``energy/scene.py``, ``optimize/``). The QP solvers (:mod:`.qp`) call it W too.
Units: positions in metres, forces dimensionless (unit edges), torques scaled by ``torque_weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from ..backend import kernel_backend
from .qp import BoxQPResult, solve_box_qp

__all__ = [
    "ForceClosureConfig",
    "ForceClosureQP",
    "force_closure_energy",
    "friction_cone_edges",
    "grasp_matrix",
    "qp_value",
    "singular_value_mean",
    "tangent_basis",
]


@dataclass(frozen=True)
class ForceClosureConfig:
    """Constants of E_fc; defaults are METHOD.md's reference values.

    Attributes:
        mu: friction coefficient, 0 <= mu < 1.
        num_edges: friction-cone edges per contact (m).
        torque_weight: tau in w = [f ; tau (p - c) x f], 1/metre.
        lower, upper: bounds on every edge force coefficient lambda_i.
        eps: Tikhonov weight of the QP.
        value_offset, energy_scale, sv_weight: E_fc = energy_scale (V + value_offset) exp(-sv_weight s).
        sv_floor: s uses sqrt(sigma^2 + sv_floor^2) per singular value, so rank-deficient W
            (all contacts at one point, say) has finite gradients; negligible otherwise.
        rtol, max_iter: QP solver settings (see :func:`solve_box_qp`).
    """

    mu: float = 0.2
    num_edges: int = 4
    torque_weight: float = 5.0
    lower: float = 1.0
    upper: float = 21.0
    eps: float = 1e-4
    value_offset: float = 0.01
    energy_scale: float = 2.0
    sv_weight: float = 0.1
    sv_floor: float = 1e-6
    rtol: float = 1e-15
    max_iter: int = 60

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"ForceClosureConfig.{f.name} must be a finite number, got {v!r}")
        _check_mu(self.mu)
        if int(self.num_edges) != self.num_edges or self.num_edges < 3:
            raise ValueError(f"ForceClosureConfig.num_edges must be an integer >= 3, got {self.num_edges}")
        if not self.lower < self.upper:
            raise ValueError(f"ForceClosureConfig needs lower < upper, got {self.lower}, {self.upper}")
        if not self.eps > 0:
            raise ValueError(f"ForceClosureConfig.eps must be > 0, got {self.eps}")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise ValueError(f"ForceClosureConfig.max_iter must be an integer >= 1, got {self.max_iter}")
        for name in ("torque_weight", "value_offset", "energy_scale", "sv_weight", "sv_floor", "rtol"):
            if getattr(self, name) < 0:
                raise ValueError(f"ForceClosureConfig.{name} must be >= 0, got {getattr(self, name)}")


def _check_mu(mu: float) -> float:
    mu = float(mu)
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"friction coefficient mu must satisfy 0 <= mu < 1, got {mu}")
    return mu


def _check_vectors(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != 3 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape (B, K, 3), got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")


def tangent_basis(normals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal tangents (t1, t2), each (..., 3), of unit ``normals`` (..., 3); (t1, t2, n) is right-handed.

    Branchless construction of Duff et al. ("Building an orthonormal basis, revisited", JCGT 2017):
    exact and finite for every unit n (including +-x, +-y, +-z), smooth except across the plane
    n_z = 0 where the sign branch switches. No tangent field can be smooth on the whole sphere
    (hairy-ball theorem); across that seam the 4-edge pyramid turns about n, by a multiple of 90
    degrees (i.e. not at all) for axis-aligned and diagonal normals.
    """
    nx, ny, nz = normals.unbind(-1)
    s = torch.where(nz >= 0, torch.ones_like(nz), -torch.ones_like(nz))  # -0.0 counts as +0.0
    a = -1.0 / (s + nz)  # |s + nz| >= 1
    b = nx * ny * a
    t1 = torch.stack((1.0 + s * nx * nx * a, s * b, -s * nx), -1)
    t2 = torch.stack((b, s + ny * ny * a, -ny), -1)
    return t1, t2


_EDGE_CACHE: dict = {}


def _edge_coefficients(m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(m, 2) (cos, sin) of the edge directions in the tangent plane; exact +-t1, +-t2 for m = 4.

    Made once per (m, dtype, device): a host-to-device copy inside a step cannot be captured in a
    CUDA graph (and costs a round trip every step)."""
    key = (m, dtype, str(device))
    if key not in _EDGE_CACHE:
        if m == 4:
            c = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
        else:
            c = [[math.cos(2 * math.pi * j / m), math.sin(2 * math.pi * j / m)] for j in range(m)]
        _EDGE_CACHE[key] = torch.tensor(c, dtype=dtype, device=device)
    return _EDGE_CACHE[key]


def friction_cone_edges(normals: torch.Tensor, mu: float = 0.2, m: int = 4) -> torch.Tensor:
    """Unit friction-cone edges (B, K, m, 3) for outward object normals (B, K, 3).

    Edge j of contact k is ``sqrt(1 - mu^2) (-n_k) + mu t_j`` with t_j = cos(2 pi j / m) t1 + sin(2 pi j / m) t2
    (for m = 4: +t1, +t2, -t1, -t2); the normals are normalised first. The edge makes angle
    asin(mu) with -n_k (METHOD.md's formula): for mu = 0.2 that is 11.54 deg, 0.23 deg wider than
    the Coulomb cone's atan(mu).
    """
    _check_vectors("normals", normals)
    mu = _check_mu(mu)
    if int(m) != m or m < 3:
        raise ValueError(f"m (edges per friction cone) must be an integer >= 3, got {m}")
    n = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    t1, t2 = tangent_basis(n)
    c = _edge_coefficients(int(m), n.dtype, n.device)  # (m, 2)
    t = c[:, 0, None] * t1.unsqueeze(-2) + c[:, 1, None] * t2.unsqueeze(-2)  # (B, K, m, 3)
    return math.sqrt(1.0 - mu * mu) * (-n).unsqueeze(-2) + mu * t


def grasp_matrix(
    points: torch.Tensor,
    normals: torch.Tensor,
    center: torch.Tensor,
    mu: float = 0.2,
    torque_weight: float = 5.0,
    m: int = 4,
) -> torch.Tensor:
    """Grasp (wrench) matrix W (B, 6, m K): column k m + j is [f_kj ; torque_weight (p_k - c) x f_kj].

    Args:
        points: (B, K, 3) contact positions, metres, object frame.
        normals: (B, K, 3) outward object normals at the contacts.
        center: (B, 3) or (3,) object centre of mass.
        mu, torque_weight, m: friction coefficient, torque weight (1/m), edges per contact.
    """
    _check_vectors("points", points)
    _check_vectors("normals", normals)
    if points.shape != normals.shape:
        raise ValueError(f"points and normals must have the same shape, got {tuple(points.shape)} and {tuple(normals.shape)}")
    B, K, _ = points.shape
    if K < 1:
        raise ValueError("need at least one contact (K >= 1)")
    if not isinstance(center, torch.Tensor) or center.shape not in ((3,), (B, 3)):
        raise ValueError(f"center must be a tensor of shape (3,) or ({B}, 3), got {tuple(getattr(center, 'shape', ()))}")
    torque_weight = float(torque_weight)
    if not (math.isfinite(torque_weight) and torque_weight >= 0):
        raise ValueError(f"torque_weight must be finite and >= 0, got {torque_weight}")
    f = friction_cone_edges(normals, mu, m)  # (B, K, m, 3)
    c = center.to(points.dtype).reshape(-1, 1, 3)
    r = (points - c).unsqueeze(-2).expand_as(f)
    tau = torque_weight * torch.linalg.cross(r, f, dim=-1)
    w = torch.cat((f, tau), -1)  # (B, K, m, 6)
    return w.reshape(B, K * int(m), 6).transpose(1, 2)


def _check_grasp_matrix(W: torch.Tensor) -> None:
    if not isinstance(W, torch.Tensor) or W.ndim != 3 or not W.is_floating_point():
        raise ValueError(f"the grasp matrix W must be a floating-point tensor of shape (B, R, M), got "
                         f"{type(W).__name__} {tuple(getattr(W, 'shape', ()))}")


def qp_value(W: torch.Tensor, l_star: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """V = 0.5 ||W l*||^2 + 0.5 eps ||l*||^2, (B,), with l* (B, M) detached.

    At the QP minimiser l* this is V(W), and autograd gives Danskin's dV/dW = W l* l*^T.
    """
    _check_grasp_matrix(W)
    if not isinstance(l_star, torch.Tensor) or l_star.shape != (W.shape[0], W.shape[2]):
        raise ValueError(f"l_star must have shape {(W.shape[0], W.shape[2])}, got {tuple(getattr(l_star, 'shape', ()))}")
    lam = l_star.detach().to(W.dtype)
    w = torch.bmm(W, lam.unsqueeze(-1)).squeeze(-1)
    return 0.5 * w.square().sum(-1) + 0.5 * float(eps) * lam.square().sum(-1)


def singular_value_mean(W: torch.Tensor, floor: float = 1e-6) -> torch.Tensor:
    """Geometric mean s (B,) of the R singular values of W (B, R, M), each taken as sqrt(sigma^2 + floor^2).

    Computed as det(W W^T + floor^2 I)^(1 / 2R) in float64: cheaper than an SVD, and the floor keeps
    value and gradient finite when W is rank-deficient. Returned in W's dtype. With the numba backend
    (CPU) through a Cholesky factor; elsewhere by Gaussian elimination written as tensor ops
    (:func:`_logdet_spd`), because the batched Cholesky of CUDA libraries is not known to be safe to
    capture in a CUDA graph.
    """
    _check_grasp_matrix(W)
    R = W.shape[1]
    Wd = W.to(torch.float64)
    A = Wd @ Wd.mT + (float(floor) ** 2) * torch.eye(R, dtype=torch.float64, device=W.device)
    if kernel_backend(W.device) == "numba":
        L = torch.linalg.cholesky_ex(A)[0]
        logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    else:
        logdet = _logdet_spd(A)
    return torch.exp(logdet / (2 * R)).to(W.dtype)


def _logdet_spd(A: torch.Tensor) -> torch.Tensor:
    """log det A (B,) of symmetric positive definite A (B, R, R): Gaussian elimination without
    pivoting (the pivots of an SPD matrix are positive), differentiable, ~8 ops per row."""
    logdet = None
    for k in range(A.shape[-1]):
        p = A[:, 0, 0]
        logdet = torch.log(p) if logdet is None else logdet + torch.log(p)
        if A.shape[-1] > 1:
            A = A[:, 1:, 1:] - A[:, 1:, :1] * (A[:, :1, 1:] / p[:, None, None])
    return logdet


def force_closure_energy(
    W: torch.Tensor,
    l_star: torch.Tensor,
    config: ForceClosureConfig | None = None,
) -> torch.Tensor:
    """E_fc = energy_scale (V(W) + value_offset) exp(-sv_weight s(W)), (B,), differentiable w.r.t. W.

    ``l_star`` (B, M) is the QP solution for this W (e.g. ``solve_box_qp(W).l``); it is detached.
    """
    cfg = config or ForceClosureConfig()
    V = qp_value(W, l_star, cfg.eps)
    s = singular_value_mean(W, cfg.sv_floor)
    return cfg.energy_scale * (V + cfg.value_offset) * torch.exp(-cfg.sv_weight * s)


class ForceClosureQP:
    """E_fc for a batch of B grasps across optimiser iterations, warm-starting each grasp's QP.

    The QP solution of the previous call seeds the next one (grasps move a little per step), which
    usually cuts the solve to one or two Newton iterations. With a Metropolis optimiser, call
    :meth:`accept` after each accept/reject so that rejected grasps keep the warm start of the
    state the next proposal starts from; call :meth:`reset` for grasps that are re-initialised. A
    change of batch shape or device drops all warm starts.

    Example::

        fc = ForceClosureQP()
        for step in range(n):
            E_new = fc.energy(points, normals, center)   # (B,), differentiable w.r.t. points, normals
            accepted = ...                               # Metropolis
            fc.accept(accepted)
            fc.reset(reinitialised)
    """

    def __init__(self, config: ForceClosureConfig | None = None, step_iterations: int | None = 20) -> None:
        self.config = config if config is not None else ForceClosureConfig()
        if not isinstance(self.config, ForceClosureConfig):
            raise ValueError(f"config must be a ForceClosureConfig, got {type(self.config).__name__}")
        # Newton iterations of every solve on the torch backend (None: config.max_iter), which cannot
        # stop when all problems are done without a host round trip. Solves of an optimiser's
        # proposals (contacts resampled, warm-started) needed 5.3 on average, > 8 for 13.5 % of
        # them, > 16 for 1.1 %, > 20 for 0.13 % (Allegro, box and sphere, 12,800 solves); the rare
        # unconverged one overestimates V and continues from its warm start at the next step.
        # The numba and Triton solvers stop each problem at convergence and ignore this.
        self.step_iterations = step_iterations
        # Buffers updated in place (a CUDA graph replays reads and writes of fixed addresses):
        self.warm_start: torch.Tensor | None = None  # (B, M) start of the next solve; NaN rows: cold
        self._last: torch.Tensor | None = None  # (B, M) solutions of the last solve
        self._accepted: torch.Tensor | None = None  # (B, M) solutions of the accepted states
        self.last_result: BoxQPResult | None = None

    def solve(self, W: torch.Tensor) -> BoxQPResult:
        """Solve the QP for W (B, 6, M) from the stored warm starts; the solution becomes the next
        warm start."""
        _check_grasp_matrix(W)
        cfg = self.config
        ws = self.warm_start
        if ws is not None and (ws.shape != (W.shape[0], W.shape[2]) or ws.device != W.device):
            ws = self.warm_start = self._last = self._accepted = None
        res = solve_box_qp(W, cfg.lower, cfg.upper, cfg.eps, warm_start=ws, rtol=cfg.rtol,
                           max_iter=int(cfg.max_iter), fixed_iterations=self.step_iterations)
        if self.warm_start is None:
            self.warm_start, self._last, self._accepted = res.l.clone(), res.l.clone(), res.l.clone()
        else:
            self._last.copy_(res.l)
            self.warm_start.copy_(res.l)
        self.last_result = res
        return res

    def grasp_matrix(self, points: torch.Tensor, normals: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """W (B, 6, m K) with this configuration's mu, torque weight and edge count."""
        cfg = self.config
        return grasp_matrix(points, normals, center, cfg.mu, cfg.torque_weight, cfg.num_edges)

    def energy(self, points: torch.Tensor, normals: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """E_fc (B,) for contacts ``points``/``normals`` (B, K, 3) around ``center`` ((B, 3) or (3,)).

        Differentiable w.r.t. points and normals (Danskin for V; the solve itself is not traced).
        """
        wrenches = self.grasp_matrix(points, normals, center)  # W (B, 6, m K)
        res = self.solve(wrenches.detach())
        return force_closure_energy(wrenches, res.l, self.config)

    def _check_mask(self, mask: torch.Tensor) -> torch.Tensor:
        B = self.warm_start.shape[0]
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (B,):
            raise ValueError(f"mask must be a bool tensor of shape ({B},), got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
        return mask.to(self.warm_start.device).unsqueeze(1)

    def accept(self, mask: torch.Tensor) -> None:
        """After a Metropolis step: grasps where ``mask`` (B,) is True moved to the state of the last
        solve; the others stay where they were, and so does their warm start."""
        if self.warm_start is None:
            return
        m = self._check_mask(mask)
        self._accepted.copy_(torch.where(m, self._last, self._accepted))
        self.warm_start.copy_(self._accepted)

    def reset(self, mask: torch.Tensor | None = None) -> None:
        """Drop the warm starts of the grasps where ``mask`` (B,) bool is True (all when None)."""
        if mask is None or self.warm_start is None:
            self.warm_start = self._last = self._accepted = None
            return
        m = self._check_mask(mask)
        self.warm_start.masked_fill_(m, float("nan"))
        self._accepted.masked_fill_(m, float("nan"))
