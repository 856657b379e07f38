"""``DeformableEngine``: the ``SegmentEngine`` of ``ds.FEM``/``ds.Shell`` and its solvers.

A substep is one explicit (symplectic Euler) step or one implicit (backward Euler)
step solved by Newton's method:

* the search direction solves ``H dx = -g`` by block-Jacobi preconditioned conjugate
  gradients to a relative residual ``cg_tol``, with the exact Hessian while CG finds it
  positive definite (quadratic convergence; the inertia term usually makes it so) and
  the projected one (element Hessians clamped to positive semi-definite) from the first
  sign of negative curvature on (``hessian="projected"`` always projects);
* a backtracking line search (Armijo, halving) on the incremental potential; the
  Newton step is taken unsearched when its expected decrease is below the energy's
  rounding ``2 eps X |f|`` (``eps`` the machine epsilon of the runtime precision, ``X``
  the largest coordinate, ``|f|`` the root sum of squares of the nodes' force
  magnitudes: rounding the positions by ``eps X`` changes each term by its force times
  that, with random signs), where energy differences are noise. The test itself is
  strict: an allowance for rounding let a sliding contact cycle between two iterates
  (accepting a real increase). The halving stops where the expected decrease falls
  below the energy's round-off (also ``eps`` times the sum of its terms); if no step
  passes before (the round-off hides the decrease: float32), the step length comes
  from the energy's derivative along the direction instead (``_slope_search``:
  bisection on ``g(x + a dx) . dx``, which is resolved to ``eps`` of the forces);
* convergence when the Newton step moves no node more than ``newton_tol`` times the
  body size, or than ``16 eps`` times the largest coordinate ``X`` at the step's start (no
  smaller step is resolved), or when the gradient is at its rounding level: the block-Jacobi step
  ``P_i g_i`` (``P_i`` the inverse of node ``i``'s diagonal Hessian block) moves no node
  more than ``16 eps X``. Rounding the positions by ``eps X`` changes the gradient by
  about the Hessian times that, so Newton cannot reduce it further; ill-conditioned
  couplings (stiff regularised friction on a soft pad, a free body held by friction)
  amplify that noise in the Newton step ``H^-1 g``, not in ``P g``. The last Newton step
  is always taken.

The backward pass of an implicit step solves the adjoint system with the exact
Hessian (implicit function theorem) to ``adjoint_tol``; the backward pass of an
explicit step runs Taichi's reverse kernels plus the hand-written elastic adjoint.

Precision: the user's tolerances are floored at what the precision resolves (the
``*_ULPS`` constants below). In float64 the floors lie far below every tolerance in
use (1e-13 relative at the tightest), so they change nothing there; in float32
(``eps = 1.2e-7``) they replace tolerances that no float32 solve can reach (a step
of 1e-11 m among coordinates of 1e-2 m, whose spacing is 1e-9 m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..errors import ConvergenceError, SimulationError
from ..runtime import ensure_init

#: a Newton step below this many units of the last place of the largest coordinate
#: is rounding noise (the iterate cannot move by less)
STEP_ULPS = 16
#: the energy's rounding, in ``eps X |f|`` (see above): an expected decrease below it
#: takes the Newton step unsearched
ENERGY_ULPS = 2
#: halvings of the derivative line search (``DeformableEngine._slope_search``): the step
#: length to 1/4096
SLOPE_BISECTIONS = 12
#: the relative residual of a CG solve cannot go below a few ``eps``
CG_ULPS = 16
#: meshes up to this many nodes solve CG in one single-threaded launch on the CPU
#: (``NodeCG.serial``, fem/node_cg.py): below it the 4 launches per iteration cost more than the
#: arithmetic (Lift-v1's 115-node sheet: 119 iterations per Newton step)
SERIAL_CG_NODES = 1000


@dataclass
class SolverOptions:
    """Settings of the implicit solver (see ``ds.FEM``)."""

    newton_tol: float = 1e-6
    max_newton: int = 30
    cg_tol: float = 1e-6
    max_cg: int = 2000
    adjoint_tol: float = 1e-10
    length_scale: float = 1.0
    hessian: str = "auto"
    #: allow the one-launch CG of small meshes on the CPU (``SERIAL_CG_NODES``)
    serial_cg: bool = True


@dataclass
class SolverStats:
    """Counters since the last ``reset``: implicit steps, Newton and CG iterations."""

    steps: int = 0
    newton_iters: int = 0
    cg_iters: int = 0
    adjoint_solves: int = 0
    adjoint_cg_iters: int = 0
    line_search_failures: int = 0
    unconverged_steps: int = 0
    adjoint_fallbacks: int = 0
    failures: list = field(default_factory=list)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("steps", "newton_iters", "cg_iters", "adjoint_solves",
                                           "adjoint_cg_iters", "line_search_failures",
                                           "unconverged_steps", "adjoint_fallbacks")}
        d["newton_per_step"] = self.newton_iters / max(self.steps, 1)
        d["cg_per_newton"] = self.cg_iters / max(self.newton_iters, 1)
        d["cg_per_adjoint"] = self.adjoint_cg_iters / max(self.adjoint_solves, 1)
        return d


class DeformableEngine:
    """Kernels of one model with room for ``segment`` control steps."""

    #: CG in one single-threaded launch (``NodeCG.serial``; set per engine in __init__)
    serial_cg = False

    def __init__(self, kernels_cls, model, segment: int, requires_grad: bool, dtype, device,
                 options: SolverOptions, stats: SolverStats):
        self.model = model
        self.segment = segment
        self.substeps = model.substeps
        self.requires_grad = requires_grad
        self.dtype, self.device = dtype, device
        self.opts = options
        self.stats = stats
        self.k = kernels_cls(model, segment * model.substeps + 1, requires_grad)
        self.implicit = model.integrator == "implicit"
        self.resident_run = None
        self._failure: str | None = None
        #: machine epsilon of the runtime precision (float32: 1.2e-7, float64: 2.2e-16)
        self.eps = float(torch.finfo(dtype).eps)
        self.serial_cg = (ensure_init().is_cpu and options.serial_cg
                          and model.n_nodes <= SERIAL_CG_NODES)

    def close(self) -> None:
        self.k.destroy()

    # ------------------------------------------------------------------ shapes
    def _c(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.dtype).contiguous()

    def state_like(self) -> list:
        n, d = self.model.n_nodes, self.model.dim
        shapes = [(n, d), (n, d), *self.k.extra_state_shapes()]
        return [torch.empty(s, dtype=self.dtype, device=self.device) for s in shapes]

    def _extra(self, pattern: str):
        """The kernels of every ``EXTRA_STATE`` name for ``pattern`` ("load_{}", ...)."""
        return [getattr(self.k, pattern.format(name)) for name in self.k.EXTRA_STATE]

    def _drive_like(self, n: int) -> list:
        K, d, r = max(len(self.model.tools), 1), self.model.dim, self.model.rot_dim
        shapes = [(n, K, d), (n, K, d, d), (n, K, d), (n, K, r)]
        return [torch.zeros(s, dtype=self.dtype, device=self.device) for s in shapes]

    # ------------------------------------------------------------------ SegmentEngine
    def set_params(self, params) -> None:
        material, friction = params
        self.k.load_params(self._c(material), self._c(friction))

    def load_state(self, slot: int, state) -> None:
        self.resident_run = None
        # a rollout that did not check its steps (check=False) leaves no stale failure
        self._failure = None
        self.k.load_nodes(slot, self._c(state[0]), self._c(state[1]))
        for load, t in zip(self._extra("load_{}"), state[2:]):
            load(slot, self._c(t))

    def store_state(self, slot: int) -> list:
        out = self.state_like()
        self.k.store_nodes(slot, out[0], out[1])
        for store, t in zip(self._extra("store_{}"), out[2:]):
            store(slot, t)
        return out

    def copy_slot(self, src: int, dst: int) -> None:
        self.load_state(dst, self.store_state(src))

    def load_drive(self, drive) -> None:
        if self.model.tools:
            self.k.load_tools(drive[0].shape[0], *[self._c(t) for t in drive])

    def substep(self, s: int) -> None:
        self.k.before_substep(s)
        if self.implicit:
            self.newton(s)
        else:
            self.k.element_forces(s, False)
            self.k.gather_forces()
            self.k.explicit_nodes(s, False)
        self.k.after_substep(s)

    def backward_stages(self, s: int) -> list:
        """The reverse of substep ``s -> s + 1`` as named stages ``(name, run)``, in order
        (``diffsim.adjoint`` runs them one by one to name where a non-finite gradient
        first appeared)."""
        k = self.k
        stages = [("before_substep (self-contact pairs)", lambda: k.before_substep(s)),
                  (k.AFTER_SUBSTEP_STAGE + " (reverse)", lambda: k.after_substep_grad(s))]
        if self.implicit:
            return stages + self._implicit_stages(s, False)

        def nodes():
            k.fel.grad.fill(0)
            k.explicit_nodes.grad(s, True)

        return stages + [
            ("element_forces (forward replay)", lambda: (k.element_forces(s, True),
                                                         k.gather_forces())),
            ("explicit_nodes (reverse)", nodes),
            ("scatter_force_grads", k.scatter_force_grads),
            ("element_forces (reverse)", lambda: k.element_forces_adjoint(s))]

    def backward_substep(self, s: int) -> None:
        for _, run in self.backward_stages(s):
            run()

    def nonfinite_fields(self) -> dict:
        """Field name -> count of non-finite entries over the kernels' fields and their
        gradients (slow: copies every field; used only to locate a non-finite gradient)."""
        return self.k.nonfinite_fields()

    def check_step(self, slot: int, step: int) -> None:
        if self._failure is not None:
            msg, self._failure = self._failure, None
            raise ConvergenceError(msg, step=step, quantity="x", hint=(
                "lower dt (or raise substeps), soften the contact (contact_stiffness), or raise "
                "max_newton / loosen newton_tol"))
        bad = self.k.check(slot)
        if bad > 0:
            m = self.model
            hint = ("the simulation blew up; " + (
                f"the explicit integrator needs a smaller dt (now {m.dt:g} s), or use "
                "integrator='implicit'" if m.integrator == "explicit" else
                f"lower dt (now {m.dt:g} s)"))
            raise SimulationError(f"{int(bad)} node(s) have non-finite position or velocity",
                                  step=step, quantity="x/v", hint=hint)

    def zero_state_grads(self, n_slots: int) -> None:
        self.k.zero_state_grads(n_slots)

    def zero_param_grads(self) -> None:
        self.k.material.grad.fill(0)
        self.k.friction.grad.fill(0)

    def add_state_grads(self, slot: int, grads) -> None:
        like = self.state_like()
        grads = [torch.zeros_like(z) if g is None else self._c(g)
                 for g, z in zip(grads, like)]
        self.k.add_node_grads(slot, grads[0], grads[1])
        for add, g in zip(self._extra("add_{}_grads"), grads[2:]):
            add(slot, g)

    def store_state_grads(self, slot: int) -> list:
        out = self.state_like()
        self.k.store_node_grads(slot, out[0], out[1])
        for store, t in zip(self._extra("store_{}_grads"), out[2:]):
            store(slot, t)
        return out

    def store_drive_grads(self, n: int) -> list:
        out = self._drive_like(n)
        if self.model.tools:
            self.k.store_tool_grads(n, *out)
        return out

    def store_param_grads(self) -> list:
        mat = self.k.material.grad.to_torch(device=self.device)
        fr = self.k.friction.grad.to_torch(device=self.device)
        return [mat[: len(self.model.groups)].to(self.dtype),
                fr[: max(self.model.n_contact_bodies, 1)].to(self.dtype)]

    # ------------------------------------------------------------------ implicit solver
    def node_hessian(self, s: int) -> None:
        """Exact node Hessian blocks: one reverse pass of the node gradient per axis."""
        k = self.k
        d = self.model.dim
        k.node_pass_io(-1, 0)
        for c in range(d):
            k.node_grad_shadow.grad(s)
            k.node_pass_io(c, c + 1 if c + 1 < d else -1)

    def cg(self, use_gradient: bool, rel_tol: float) -> tuple[int, bool]:
        """Solve ``H dx = b`` (``b = -g`` or ``rhs``); returns (iterations, negative curvature)."""
        k = self.k
        rel_tol = max(rel_tol, CG_ULPS * self.eps)
        if self.serial_cg:
            it = int(k.cg.serial(1 if use_gradient else 0, rel_tol, self.opts.max_cg))
            if it < 0 or not math.isfinite(float(k.red[4])):
                return abs(it), True       # as below: the caller projects and solves again
            return it, False
        rr0 = k.cg.start(1 if use_gradient else 0)
        if rr0 <= 0:
            return 0, False
        target = rel_tol * rel_tol * rr0
        for it in range(self.opts.max_cg):
            rr = k.cg.iterate(it % 2)
            if rr < 0 or not math.isfinite(rr):
                # negative curvature, or a breakdown that overflowed (float32: an exact
                # Hessian near singular along p): the caller projects the Hessian and
                # solves again from zero instead of carrying inf/NaN into dx
                return it + 1, True
            if rr <= target:
                return it + 1, False
        return self.opts.max_cg, False

    def newton(self, s: int, quasi_static: bool = False) -> None:
        k, o, st = self.k, self.opts, self.stats
        k.iw[0] = 0.0 if quasi_static else 1.0
        k.begin_step(s, 0 if quasi_static else 1)
        user_tol = o.newton_tol * o.length_scale
        converged = False
        project = o.hessian == "projected"
        g0 = X = None
        for _ in range(o.max_newton):
            gmax = k.gradient(s)
            g0 = gmax if g0 is None else g0
            # the coordinates' scale at the step's start (a diverging iterate must not
            # loosen the floors)
            X = float(k.red[6]) if X is None else X
            noise_x = STEP_ULPS * self.eps * X
            tol_x = max(user_tol, noise_x)
            self.node_hessian(s)
            k.cg.prepare(project)
            n_cg, neg = self.cg(True, o.cg_tol)
            gdx = k.cg.descent()
            if not project and (neg or gdx >= 0):
                # the exact Hessian is indefinite here: project it (for the rest of the step)
                project = True
                k.cg.prepare(True)
                n2, _neg = self.cg(True, o.cg_tol)
                n_cg += n2
                gdx = k.cg.descent()
            st.newton_iters += 1
            st.cg_iters += n_cg
            dxmax = float(k.red[9])
            if dxmax <= tol_x or float(k.red[8]) <= noise_x:
                k.energy(s, 1.0)
                k.accept_trial()
                converged = True
                break
            E0 = k.energy(s, 0.0)
            # below this expected decrease, energy differences are round-off noise: the
            # line search could accept a meaningless tiny step, so take the Newton step
            terms = float(k.red[14])
            noise = max(1e-13 * terms, ENERGY_ULPS * self.eps * terms,
                        ENERGY_ULPS * self.eps * X * float(k.red[7]))
            alpha, searched = 1.0, False
            if -gdx > noise:
                # halve while the expected decrease is above the energy's round-off: below
                # it a trial point's energy "passes" the test by rounding, not by a decrease
                # (float32: it accepted steps of 1e-11 that left the iterate where it was)
                while -alpha * gdx > noise:
                    E1 = k.energy(s, alpha)   # leaves the trial point in xt
                    if E1 <= E0 + 1e-4 * alpha * gdx:
                        searched = True
                        break
                    alpha *= 0.5
                if not searched:
                    st.line_search_failures += 1
                    alpha = self._slope_search(s, gdx)
                    k.slope(s, alpha)         # leaves the trial point in xt
                    searched = True
            if not searched:
                k.energy(s, 1.0)
            k.accept_trial()
        if not converged:
            st.unconverged_steps += 1
            self._failure = (f"Newton's method did not converge in {o.max_newton} iterations "
                             f"(last step {dxmax:.3g} m, tolerance {tol_x:.3g} m; gradient "
                             f"{gmax:.3g} m/s^2, {gmax / max(g0, 1e-300):.3g} of the start; "
                             f"Jacobi step {float(k.red[8]):.3g} m)")
        st.steps += 1
        if quasi_static:
            k.iw[0] = 1.0
        else:
            k.end_step(s)
        k.iw[0] = 1.0

    def _slope_search(self, s: int, gdx: float) -> float:
        """The step length along ``dx`` where the energy stops decreasing, found from its
        derivative ``g(xk + alpha dx) . dx`` (``kernels.slope``), for when the Armijo
        search failed: the energy's round-off (``eps`` times the sum of its terms, which
        in float32 can exceed a step's whole decrease) hides the decrease, and taking the
        full Newton step instead let a sliding contact cycle between two iterates (Fold's
        sheet: 150 and 400 iterations ended on the same 2.5 mm step). The derivative is
        resolved to ``eps`` of the forces. The full step if the energy still decreases
        there; else bisection to ``SLOPE_BISECTIONS`` halvings, keeping the largest step
        with a negative slope (the energy decreases up to it). Starts from ``gdx < 0``."""
        k = self.k
        if k.slope(s, 1.0) <= 0.0:
            return 1.0
        lo, hi = 0.0, 1.0
        for _ in range(SLOPE_BISECTIONS):
            mid = 0.5 * (lo + hi)
            if k.slope(s, mid) <= 0.0:
                lo = mid
            else:
                hi = mid
        return lo if lo > 0.0 else 0.5 ** SLOPE_BISECTIONS

    def implicit_backward(self, s: int, quasi_static: bool = False) -> None:
        """Adjoint of the implicit step ``s -> s + 1`` (``x[s + 1]`` resident in its slot):
        the adjoint solve, then the vector-Jacobian products to the step's inputs."""
        for _, run in self._implicit_stages(s, quasi_static):
            run()

    def adjoint_solve(self, s: int, quasi_static: bool = False) -> None:
        """``H lam = x_bar + v_bar / h`` at ``x[s + 1]`` by PCG on the exact Hessian (the
        projected one where it is indefinite); ``lam`` is left in ``dx`` and the engine set
        up for :meth:`adjoint_vjp`, which must follow."""
        for _, run in self._implicit_stages(s, quasi_static)[:3]:
            run()

    def adjoint_vjp(self, s: int) -> None:
        """Seed ``-lam`` (in ``dx``) and run the reverse kernels into the gradients of the
        step's inputs (state at slot ``s``, drive, parameters)."""
        for _, run in self._implicit_stages(s, False)[3:]:
            run()

    def store_lambda(self) -> torch.Tensor:
        """The adjoint solution ``lam`` (``dx``) as an ``(n_nodes, dim)`` tensor."""
        out = torch.empty((self.model.n_nodes, self.model.dim), dtype=self.dtype, device=self.device)
        self.k.store_lambda(out)
        return out

    def load_lambda(self, lam: torch.Tensor) -> None:
        self.k.load_lambda(self._c(lam))

    def _implicit_stages(self, s: int, quasi_static: bool) -> list:
        """``implicit_backward`` as named stages: the adjoint system ``H lam = x_bar + v_bar /
        h`` at the solution (the first three), then ``-lam^T dg/d(inputs)`` (the last three)."""
        k, o, st = self.k, self.opts, self.stats
        exact = getattr(k, "exact_hessian", None)

        def rhs():
            k.iw[0] = 0.0 if quasi_static else 1.0
            k.begin_step(s, 0)
            k.set_iterate_from_slot(s + 1)
            k.implicit_rhs(s)

        def hessian():
            self.node_hessian(s)
            if exact is not None:
                exact(s)
            k.cg.prepare(False)

        def solve():
            n_cg, neg = self.cg(False, o.adjoint_tol)
            if exact is not None:
                k.end_exact()
            if neg:
                # the exact Hessian is indefinite here (e.g. a buckling sheet): fall back to
                # the projected one, an approximation of the gradient, and count it
                st.adjoint_fallbacks += 1
                k.cg.prepare(True)
                n2, _ = self.cg(False, o.adjoint_tol)
                n_cg += n2
            st.adjoint_solves += 1
            st.adjoint_cg_iters += n_cg

        def seed():
            k.copy_lambda_to_p()
            k.cg.matvec_full()
            k.seed_vjp(s)

        def elements():
            k.element_vjp(s)
            k.iw[0] = 1.0

        return [("implicit_rhs (adjoint right-hand side)", rhs),
                ("node and element Hessians (prepare)", hessian),
                ("adjoint CG solve", solve),
                ("seed_vjp", seed),
                ("vjp_nodes (reverse)", lambda: k.vjp_nodes.grad(s)),
                ("element_vjp (reverse)", elements)]
