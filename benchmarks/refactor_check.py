"""Before/after check for refactors of ``diffsim.solvers``: solve a fixed set of problems
with every method, sensitivity and stepping mode, and save solutions, statistics and
gradients, so that two checkouts can be compared bit for bit.

    python benchmarks/refactor_check.py save before.pt      # on the base commit
    python benchmarks/refactor_check.py save after.pt       # on the changed one
    python benchmarks/refactor_check.py compare before.pt after.pt
    python benchmarks/refactor_check.py save-sims sims.pt   # ds.MPM and ds.FEM rollouts instead

``compare`` lists every entry that differs (``torch.equal``: bitwise, NaNs compared by
position) and exits 1 if any does. Only public names (``dss.*``) are used, so the script
runs unchanged on both sides of an internal move. CPU, one thread, fixed seeds.
"""

from __future__ import annotations

import math
import sys

import torch

torch.set_num_threads(1)

from diffsim import solvers as dss  # noqa: E402


def lv(u, p, t):
    a, b = p
    return torch.stack([a * u[0] - b * u[0] * u[1], -u[1] + b * u[0] * u[1] + 0.1 * torch.sin(t)])


def vdp(u, p, t):
    return torch.stack([u[1], p * ((1 - u[0] ** 2) * u[1]) - u[0]])


def batch_field(u, p, t):
    return torch.stack([u[:, 1], -(p[:, None] ** 2 * u[:, :1]).squeeze(1) + 0.1 * torch.cos(t)], 1)


def record(out: dict, key: str, sol, leaves) -> None:
    """Store the solution's values and statistics, then the gradients of a fixed loss."""
    u = sol.u
    if isinstance(u, dict):
        u = torch.cat([v.reshape(-1) for v in u.values()])
    out[key + "/t"] = sol.t.detach().clone()
    out[key + "/u"] = u.detach().clone()
    s = sol.stats
    out[key + "/stats"] = torch.tensor([s.nfe, s.naccept, s.nreject, s.njac, s.niters, s.nfe_reg],
                                       dtype=torch.float64)
    out[key + "/retcode"] = torch.tensor([list(dss.ReturnCode).index(sol.retcode)])
    if getattr(sol, "event_t", None) is not None:
        out[key + "/event_t"] = sol.event_t.detach().clone()
    loss = (u * torch.linspace(0.5, 1.5, u.numel(), dtype=u.dtype).view(u.shape)).sum()
    if torch.is_tensor(sol.reg) and sol.reg.requires_grad:
        loss = loss + sol.reg
    if not loss.requires_grad:
        return
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    for i, g in enumerate(grads):
        out[f"{key}/grad{i}"] = torch.zeros(()) if g is None else g.detach().clone()
    out[key + "/nfe_backward"] = torch.tensor([s.nfe_backward, s.naccept_backward, s.nreject_backward])


def ode_cases(out: dict, dtype) -> None:
    name = str(dtype).split(".")[-1]
    fixed = [dss.Euler(), dss.Midpoint(), dss.Heun(), dss.RK4()]
    adaptive = [dss.BS3(), dss.DP5(), dss.Tsit5(), dss.DP8(), dss.Rosenbrock23(), dss.Rodas5P()]
    sens = [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(),
            dss.InterpolatingAdjoint(checkpoints=2), dss.QuadratureAdjoint()]
    ts = [0.0, 0.7, 1.9, 3.0]
    for alg in fixed + adaptive:
        for sa in sens:
            u0 = torch.tensor([1.0, 0.5], dtype=dtype, requires_grad=True)
            p = (torch.tensor(1.1, dtype=dtype, requires_grad=True), torch.tensor(0.4, dtype=dtype, requires_grad=True))
            kw = dict(dt=0.05) if alg in fixed else dict(rtol=1e-6, atol=1e-8)
            key = f"ode/{name}/{type(alg).__name__}/{sa!r}"
            try:
                sol = dss.solve(dss.ODEProblem(lv, u0, (0.0, 3.0), p=p), alg, saveat=ts, sensealg=sa, **kw)
                record(out, key, sol, [u0, *p])
            except ValueError as e:  # an error is a result too: the same one must come back
                out[key + "/error"] = torch.tensor(list(str(e).encode()))
        # every step saved, dense output, backwards in time
        u0 = torch.tensor([1.0, 0.5], dtype=dtype, requires_grad=True)
        p = (torch.tensor(1.1, dtype=dtype), torch.tensor(0.4, dtype=dtype, requires_grad=True))
        kw = dict(dt=0.1) if alg in fixed else dict(rtol=1e-5, atol=1e-7)
        sol = dss.solve(dss.ODEProblem(lv, u0, (2.0, -0.5), p=p), alg, **kw)
        key = f"ode/{name}/{type(alg).__name__}/dense-backwards"
        out[key + "/dense"] = torch.stack([sol(t).detach() for t in (1.95, 1.0, 0.123, -0.5)])
        record(out, key, sol, [u0, p[1]])
    # stiff problem, dtmin/dtmax/force_dtmin, norms, tstops, PI/I controllers
    for alg in [dss.Rodas5P(), dss.Rosenbrock23(), dss.Tsit5()]:
        u0 = torch.tensor([2.0, 0.0], dtype=dtype, requires_grad=True)
        mu = torch.tensor(20.0, dtype=dtype, requires_grad=True)
        sol = dss.solve(dss.ODEProblem(vdp, u0, (0.0, 2.0), p=mu), alg, rtol=1e-5, atol=1e-7, saveat=[1.0, 2.0],
                        max_steps=3000, dtmax=0.3, norm="max", tstops=[0.5, 1.5],
                        controller=dss.PIController(beta2=0.0))
        record(out, f"ode/{name}/{type(alg).__name__}/vdp-options", sol, [u0, mu])
    u0 = torch.tensor([2.0, 0.0], dtype=dtype)
    sol = dss.solve(dss.ODEProblem(vdp, u0, (0.0, 2.0), p=torch.tensor(100.0, dtype=dtype)), dss.Tsit5(),
                    rtol=1e-5, atol=1e-7, dtmin=1e-3, force_dtmin=True, saveat=[2.0])
    record(out, f"ode/{name}/force_dtmin", sol, [])
    sol = dss.solve(dss.ODEProblem(vdp, u0, (0.0, 2.0), p=torch.tensor(1e4, dtype=dtype)), dss.Tsit5(),
                    rtol=1e-5, atol=1e-7, max_steps=60, saveat=[2.0])
    record(out, f"ode/{name}/max_steps", sol, [])
    sol = dss.solve(dss.ODEProblem(vdp, u0, (0.0, 2.0), p=torch.tensor(1e4, dtype=dtype)), dss.Tsit5(),
                    rtol=1e-5, atol=1e-7, dtmin=1e-2, saveat=[2.0])
    record(out, f"ode/{name}/dtmin", sol, [])
    for alg in [dss.Euler(), dss.Tsit5()]:
        sol = dss.solve(dss.ODEProblem(lv, torch.tensor([1.0, 0.5], dtype=dtype), (0.0, 2.0),
                                       p=(torch.tensor(1.1, dtype=dtype), torch.tensor(0.4, dtype=dtype))),
                        alg, dt=0.1, adaptive=False, saveat=[0.25, 1.0, 2.0], tstops=[0.33, 1.5])
        record(out, f"ode/{name}/{type(alg).__name__}/fixed-tstops", sol, [])

    # events: a bouncing ball, terminal and recording, every sensealg
    def ball(u, p, t):
        return {"x": u["v"], "v": -p * torch.ones_like(u["v"])}

    for sa in sens[:3] + [dss.QuadratureAdjoint()]:
        h = torch.tensor([2.0], dtype=dtype, requires_grad=True)
        g = torch.tensor(9.81, dtype=dtype, requires_grad=True)
        ground = dss.Event(lambda u, p, t: u["x"][0], terminal=True, direction=-1)
        apex = dss.Event(lambda u, p, t: u["x"][0] - 1.0, terminal=False)
        prob = dss.ODEProblem(ball, {"x": h, "v": torch.zeros(1, dtype=dtype)}, (0.0, math.inf), p=g)
        sol = dss.solve(prob, dss.Tsit5(), event=[apex, ground], rtol=1e-8, atol=1e-8, sensealg=sa)
        key = f"ode/{name}/events/{sa!r}"
        out[key + "/event_u"] = torch.cat([v.reshape(-1) for v in sol.event_u.values()]).detach()
        loss_t = (sol.event_t * torch.arange(1, sol.event_t.numel() + 1, dtype=dtype)).sum()
        out[key + "/dt_dh"] = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss_t, [h, g], retain_graph=True)])
        record(out, key, sol, [h, g])

    # time gradients (torchdiffeq's convention) under each sensealg
    for sa in sens:
        ts_t = torch.linspace(0.0, 2.0, 5, dtype=dtype, requires_grad=True)
        u0 = torch.tensor([1.0, 0.5], dtype=dtype, requires_grad=True)
        p = (torch.tensor(1.1, dtype=dtype, requires_grad=True), torch.tensor(0.4, dtype=dtype))
        sol = dss.solve(dss.ODEProblem(lv, u0, (ts_t[0], ts_t[-1]), p=p), dss.DP5(), saveat=ts_t, sensealg=sa,
                        rtol=1e-6, atol=1e-8)
        record(out, f"ode/{name}/timegrad/{sa!r}", sol, [ts_t, u0, p[0]])

    # regularizers
    gen_seed = 1234
    regs = [dss.GlobalRegularization(kind="error"), dss.GlobalRegularization(kind="stiffness"),
            dss.LocalRegularization(sampling="biased"), dss.LocalRegularization(sampling="unbiased"),
            dss.LocalRegularization(sampling="biased", step="initial")]
    for reg in regs:
        for sa in [dss.DirectAdjoint(), dss.InterpolatingAdjoint()]:
            if isinstance(reg, dss.GlobalRegularization) and not isinstance(sa, dss.DirectAdjoint):
                continue
            net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).to(dtype)
            torch.manual_seed(0)
            for prm in net.parameters():
                torch.nn.init.normal_(prm, std=0.7)
            x = torch.linspace(-1, 1, 6, dtype=dtype).reshape(3, 2)
            gen = torch.Generator().manual_seed(gen_seed)
            layer = dss.NeuralODE(net, tspan=(0.0, 1.0), solver=dss.DP5(), sensealg=sa, regularization=reg,
                                  rtol=1e-5, atol=1e-7, saveat=[0.5, 1.0], generator=gen)
            sol = layer(x)
            record(out, f"ode/{name}/reg/{reg!r}/{sa!r}", sol, list(net.parameters()))

    # per-sample stepping
    W = torch.tensor([0.5, 2.0, 9.0, 30.0], dtype=dtype)
    for alg in [dss.Tsit5(), dss.BS3(), dss.Rodas5P(), dss.Euler()]:
        for sa in [dss.DirectAdjoint(), dss.BacksolveAdjoint(), dss.InterpolatingAdjoint(), dss.QuadratureAdjoint()]:
            u0 = torch.stack([torch.ones(4, dtype=dtype), torch.zeros(4, dtype=dtype)], 1).requires_grad_(True)
            Wg = W.clone().requires_grad_(True)
            kw = dict(dt=0.02) if isinstance(alg, dss.Euler) else dict(rtol=1e-6, atol=1e-8)
            sol = dss.solve(dss.ODEProblem(batch_field, u0, (0.0, 1.0), p=Wg), alg, saveat=[0.0, 0.5, 1.0],
                            per_sample=True, sensealg=sa, **kw)
            record(out, f"ode/{name}/per_sample/{type(alg).__name__}/{sa!r}", sol, [u0, Wg])
    for reg in [dss.GlobalRegularization(kind="error"), dss.LocalRegularization(sampling="biased"),
                dss.LocalRegularization(sampling="unbiased")]:
        u0 = torch.stack([torch.ones(4, dtype=dtype), torch.zeros(4, dtype=dtype)], 1).requires_grad_(True)
        Wg = W.clone().requires_grad_(True)
        sol = dss.solve(dss.ODEProblem(batch_field, u0, (0.0, 1.0), p=Wg), dss.Tsit5(), saveat=[1.0],
                        per_sample=True, regularization=reg, rtol=1e-5, atol=1e-7,
                        generator=torch.Generator().manual_seed(7))
        record(out, f"ode/{name}/per_sample/reg/{reg!r}", sol, [u0, Wg])
    u0 = torch.stack([torch.ones(4, dtype=dtype), torch.zeros(4, dtype=dtype)], 1)
    sol = dss.solve(dss.ODEProblem(batch_field, u0, (0.0, 1.0), p=W * 100), dss.Tsit5(), saveat=[1.0],
                    per_sample=True, max_steps=40, dtmax=0.2, dtmin=1e-4)
    record(out, f"ode/{name}/per_sample/max_steps", sol, [])


def sde_cases(out: dict, dtype) -> None:
    name = str(dtype).split(".")[-1]

    def f(u, p, t):
        return -p * u + torch.sin(t)

    def g(u, p, t):
        return 0.3 * torch.sqrt(1 + u**2)

    for alg, kw in [(dss.EulerMaruyama(), dict(dt=0.01)), (dss.Milstein(), dict(dt=0.013)),
                    (dss.AdaptiveMilstein(), dict(rtol=1e-2, atol=1e-2)),
                    (dss.AdaptiveMilstein(), dict(rtol=1e-3, atol=1e-3, dtmax=0.05))]:
        for saveat in ([0.25, 0.5, 1.0], None):
            u0 = torch.linspace(0.5, 1.5, 16, dtype=dtype).requires_grad_(True)
            p = torch.tensor(1.3, dtype=dtype, requires_grad=True)
            sol = dss.solve(dss.SDEProblem(f, g, u0, (0.0, 1.0), p=p), alg, seed=3, saveat=saveat, **kw)
            key = f"sde/{name}/{type(alg).__name__}/{sorted(kw.items())}/{saveat}"
            if saveat is None:
                out[key + "/dense"] = torch.stack([sol(t).detach() for t in (0.05, 0.5, 0.999)])
            record(out, key, sol, [u0, p])
    for reg in [dss.GlobalRegularization(kind="error"), dss.LocalRegularization(sampling="biased"),
                dss.LocalRegularization(sampling="unbiased")]:
        u0 = torch.linspace(0.5, 1.5, 16, dtype=dtype).requires_grad_(True)
        p = torch.tensor(1.3, dtype=dtype, requires_grad=True)
        sol = dss.solve(dss.SDEProblem(f, g, u0, (0.0, 1.0), p=p), dss.AdaptiveMilstein(), seed=5, saveat=[1.0],
                        regularization=reg, generator=torch.Generator().manual_seed(11))
        record(out, f"sde/{name}/reg/{reg!r}", sol, [u0, p])
    u0 = torch.ones(4, dtype=dtype)
    sol = dss.solve(dss.SDEProblem(lambda u, p, t: u**3, lambda u, p, t: u, u0, (0.0, 5.0)), dss.EulerMaruyama(),
                    dt=0.05, seed=0)
    record(out, f"sde/{name}/nonfinite", sol, [])
    sol = dss.solve(dss.SDEProblem(f, g, u0, (1.0, 0.0), p=torch.tensor(1.0, dtype=dtype)), dss.AdaptiveMilstein(),
                    seed=1, max_steps=15)
    record(out, f"sde/{name}/backwards-max_steps", sol, [])


def sim_cases(out: dict) -> None:
    """Rollouts and gradients of ds.MPM and ds.FEM through ds.solve and sim.rollout."""
    import diffsim as ds

    ds.init(arch="cpu", precision="f64")
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.4, 0.3), hi=(0.5, 0.4)), ds.NeoHookean(E=2e3, nu=0.3), velocity=(0.5, 0.0),
                        name="block")
    scene.add_tool(ds.Sphere(center=(0.6, 0.35), radius=0.05), friction=0.3, name="pusher")
    mpm = ds.MPM(scene, grid_res=16, dt=1e-3, substeps=4)
    scene = ds.Scene(dim=2, bounds=[(0, 1)] * 2)
    scene.add_soft_body(ds.Box(lo=(0.3, 0.0), hi=(0.4, 0.05)), ds.StableNeoHookean(E=2e3, nu=0.3),
                        resolution=0.025, velocity=(0.1, 0.0), name="snh")
    scene.add_ground(height=0.0, friction=0.4)
    scene.add_tool(ds.Sphere(center=(0.435, 0.025), radius=0.03), friction=0.3, name="pusher")
    fem = ds.FEM(scene, dt=2e-3, substeps=3, integrator="explicit", contact_stiffness=2e3)
    for name, sim, pname in (("mpm", mpm, "E"), ("fem", fem, "snh.E")):
        T = 6
        s0 = sim.reset()
        for how in ("solve", "rollout"):
            for segment in (2, 4, 6):
                U = torch.zeros(T, sim.action_dim, dtype=torch.float64)
                U[:, 0] = -1.0
                U.requires_grad_(True)
                E = torch.tensor(2e3, dtype=torch.float64, requires_grad=True)
                v0 = s0.v.clone().requires_grad_(True)
                start = s0.replace(v=v0)
                if how == "solve":
                    prob = ds.SimulationProblem(sim, controls=U, params={pname: E}, state0=start)
                    states = ds.solve(prob, sensealg=ds.CheckpointAdjoint(segment=segment), saveat="all").u
                else:
                    states = sim.rollout(start, U, params={pname: E}, segment=segment, saveat=[2, 5, 6])
                key = f"sim/{name}/{how}/{segment}"
                x = torch.stack([s.x for s in states])
                v = torch.stack([s.v for s in states])
                out[key + "/x"] = x.detach().clone()
                loss = (x * torch.linspace(0.5, 1.5, x.numel(), dtype=x.dtype).view(x.shape)).sum() + v.pow(2).sum()
                for i, g in enumerate(torch.autograd.grad(loss, [U, E, v0])):
                    out[f"{key}/grad{i}"] = g.detach().clone()
        sim.close()


def save(path: str, sims: bool = False) -> None:
    out: dict = {}
    if sims:
        sim_cases(out)
        torch.save(out, path)
        print(f"saved {len(out)} entries to {path}")
        return
    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(0)
        ode_cases(out, dtype)
        sde_cases(out, dtype)
    torch.save(out, path)
    print(f"saved {len(out)} entries to {path}")


def compare(a_path: str, b_path: str) -> int:
    a, b = torch.load(a_path), torch.load(b_path)
    bad = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            bad.append(f"{k}: only in {'before' if k in a else 'after'}")
            continue
        x, y = a[k], b[k]
        if x.shape != y.shape or x.dtype != y.dtype:
            bad.append(f"{k}: shape/dtype {tuple(x.shape)} {x.dtype} vs {tuple(y.shape)} {y.dtype}")
        elif not (torch.equal(x, y) or torch.equal(torch.isnan(x), torch.isnan(y))
                  and torch.equal(torch.nan_to_num(x), torch.nan_to_num(y))):
            diff = (x.double() - y.double()).abs().max().item()
            bad.append(f"{k}: max |difference| {diff:.3e}")
    print(f"{len(set(a) | set(b))} entries, {len(bad)} differ")
    for line in bad:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("save", "save-sims"):
        save(sys.argv[2], sims=sys.argv[1] == "save-sims")
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
