"""Force-closure QP figures, printed as JSON.

For B in (16, 32, 128, 1024) and K in (4, 12) contacts, on grasp matrices of random contacts:

- cold solve (ms, best of repeats) and Newton iterations (mean, max);
- warm solve after a small optimiser-like step (contacts moved ~1 mm, normals turned ~0.6 deg),
  warm-started from the previous solution; and after a MALA-style proposal that resamples 40 % of
  the contacts;
- the largest relative objective gap to an exact reference solver (daqp when installed, else
  scipy's BVLS, on up to 256 problems), and the reference's time for the whole batch in a Python
  loop (extrapolated from the subset when it is slower);
- E_fc forward + backward through ForceClosureQP (warm) for the whole batch.

Families: "sphere" (contacts near a sphere of radius 5-10 cm, outward normals; many are force
closure) and "box" (points anywhere in a 20 cm box with random normals; harder QPs).

    python bench/bench_qp.py [--threads 1] [--repeat 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from graspforge.energy import ForceClosureQP, grasp_matrix, solve_box_qp

LO, HI, EPS = 1.0, 21.0, 1e-4


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _contacts(family: str, B: int, K: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.randn(B, K, 3, generator=g, dtype=torch.float64)
    n = n / n.norm(dim=-1, keepdim=True)
    if family == "sphere":
        r = 0.05 + 0.05 * torch.rand(B, 1, 1, generator=g, dtype=torch.float64)
        return r * n + 0.005 * torch.randn(B, K, 3, generator=g, dtype=torch.float64), n
    return 0.1 * (2 * torch.rand(B, K, 3, generator=g, dtype=torch.float64) - 1), n


def _reference(G: np.ndarray) -> tuple[np.ndarray, str]:
    """Exact minimum values (B,), one problem at a time; and the solver's name."""
    B, R, M = G.shape
    out = np.empty(B)
    try:
        import daqp
    except ImportError:
        daqp = None
    H = np.einsum("brm,brn->bmn", G, G) + EPS * np.eye(M)
    if daqp is not None:
        f, A = np.zeros(M), np.zeros((0, M))
        up, low, sense = np.full(M, HI), np.full(M, LO), np.zeros(M, dtype=np.int32)
        for b in range(B):
            x = daqp.solve(H[b], f, A, up, low, sense, primal_tol=1e-12, eps_prox=0)[0]
            out[b] = 0.5 * x @ H[b] @ x
        return out, "daqp"
    from scipy.optimize import lsq_linear

    reg = np.sqrt(EPS) * np.eye(M)
    for b in range(B):
        x = lsq_linear(np.vstack([G[b], reg]), np.zeros(R + M), bounds=(LO, HI), method="bvls", tol=1e-15).x
        out[b] = 0.5 * x @ H[b] @ x
    return out, "scipy-bvls"


def case(family: str, B: int, K: int, repeat: int, device: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c = torch.zeros(3, dtype=torch.float64)
    p, n = _contacts(family, B, K, g)
    G = grasp_matrix(p, n, c)
    # a small optimiser-like step
    n_step = n + 0.01 * torch.randn(n.shape, generator=g, dtype=n.dtype)
    G_step = grasp_matrix(p + 0.001 * torch.randn(p.shape, generator=g, dtype=p.dtype),
                          n_step / n_step.norm(dim=-1, keepdim=True), c)
    # a MALA proposal: 40 % of the contact indices resampled
    p_new, n_new = _contacts(family, B, K, g)
    swap = (torch.rand(B, K, 1, generator=g) < 0.4)
    G_swap = grasp_matrix(torch.where(swap, p_new, p), torch.where(swap, n_new, n), c)
    G, G_step, G_swap = (x.to(device) for x in (G, G_step, G_swap))

    cold = solve_box_qp(G)
    warm = solve_box_qp(G_step, warm_start=cold.l)
    swapped = solve_box_qp(G_swap, warm_start=cold.l)
    out = {
        "family": family, "B": B, "K": K,
        "cold_ms": round(_time(lambda: solve_box_qp(G), repeat), 3),
        "cold_iters_mean": round(cold.iterations.float().mean().item(), 2),
        "cold_iters_max": int(cold.iterations.max()),
        "warm_step_ms": round(_time(lambda: solve_box_qp(G_step, warm_start=cold.l), repeat), 3),
        "warm_step_iters_mean": round(warm.iterations.float().mean().item(), 2),
        "warm_step_iters_max": int(warm.iterations.max()),
        "warm_resample40_ms": round(_time(lambda: solve_box_qp(G_swap, warm_start=cold.l), repeat), 3),
        "warm_resample40_iters_mean": round(swapped.iterations.float().mean().item(), 2),
        "warm_resample40_iters_max": int(swapped.iterations.max()),
        "all_converged": bool(cold.converged.all() and warm.converged.all() and swapped.converged.all()),
    }
    # accuracy against the exact reference (on a subset), and the reference's own time
    sub = min(B, 256)
    Gs = G_step[:sub].double().cpu().numpy()
    t = time.perf_counter()
    ref, name = _reference(Gs)
    ref_ms = (time.perf_counter() - t) * 1e3 * B / sub
    ours = solve_box_qp(G_step[:sub], warm_start=cold.l[:sub]).value.double().cpu().numpy()
    ours_cold = solve_box_qp(G_step[:sub]).value.double().cpu().numpy()
    out["max_rel_gap_vs_exact"] = float(max(np.max((ours - ref) / ref), np.max((ours_cold - ref) / ref)))
    out["gap_checked_on"] = sub
    out["reference"] = name
    out["reference_loop_ms"] = round(ref_ms, 2)

    # E_fc forward + backward through the warm-starting helper
    fc = ForceClosureQP()
    pts = p.to(device).requires_grad_()
    nrm = n.to(device).requires_grad_()
    cen = c.to(device)
    fc.energy(pts, nrm, cen)

    def fwd_bwd():
        fc.energy(pts, nrm, cen).sum().backward()

    out["energy_fwd_bwd_warm_ms"] = round(_time(fwd_bwd, repeat), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", default="sphere,box")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for family in args.families.split(","):
        for K in (4, 12):
            for B in (16, 32, 128, 1024):
                results.append(case(family, B, K, args.repeat, args.device))
    print(json.dumps({"threads": args.threads, "device": args.device, "torch": torch.__version__,
                      "cases": results}, indent=1))


if __name__ == "__main__":
    main()
