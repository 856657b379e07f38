"""ds.Tactile with a free rigid object: free fall, the friction hold threshold, gradients.

One simulator (two 50-node pads either side of a free 8 mm cube, fingers 1 mm open) serves
the slow tests; the fast ones check the mass properties and bad input (no compilation).
"""

import math

import pytest
import torch

import diffsim as ds
from diffsim.tactile.rigid import mass_properties

F64 = torch.float64
H = 0.004          # half size of the cube (m)
GAP = 0.001        # each finger starts this far from the cube (m)
DENSITY = 1e5      # kg/m^3: a heavy cube (51 g), so that the explicit body update is stable


def gripper(free=True, ground=None, **kw):
    scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0))
    scene.add_tool(ds.Box(lo=(-H, -H, -H), hi=(H, H, H)), friction=0.5, name="cube")
    if ground is not None:
        scene.add_ground(ground, friction=0.5)
    pad = ds.TactilePad.flat((0.01, 0.01, 0.003), 0.0025)
    mat = ds.NeoHookean(E=1e5, nu=0.4, density=1000.0)
    xg = H + 0.003 + GAP
    sensors = [ds.TactileSensor(pad=pad, material=mat, markers=(3, 3), damping=(0.0, 5e-3),
                                camera=ds.TactileCamera(resolution=(12, 10)),
                                position=(sx * xg, 0, 0), normal=(-sx, 0, 0), name=name)
               for sx, name in ((-1, "left"), (1, "right"))]
    opts = {"dt": 2e-3, "newton_tol": 1e-12, "cg_tol": 1e-12, "friction_eps": 1e-4,
            "free_objects": {"cube": DENSITY} if free else None}
    opts.update(kw)
    return ds.Tactile(scene, sensors=sensors, **opts)


@pytest.fixture(scope="module")
def sim():
    s = gripper()
    yield s
    s.close()


def squeeze_controls(sim, T, speed, close_steps=4):
    """Both fingers close at ``speed`` (m/s) for ``close_steps`` steps, then hold still."""
    U = torch.zeros(T, sim.action_dim, dtype=F64)
    U[:close_steps, 0] = speed
    U[:close_steps, 6] = -speed
    return U


def normal_force(sim, state):
    return -float(state.f[sim.groups["left"]].sum(0)[0])   # the cube pushes the left pad to -x


def test_mass_properties():
    m, inertia = mass_properties("box", (0.01, 0.02, 0.03), 0, 1000.0)
    assert m == pytest.approx(1000.0 * 0.02 * 0.04 * 0.06)
    assert inertia[0] == pytest.approx(m * (0.04 ** 2 + 0.06 ** 2) / 12)
    m, inertia = mass_properties("sphere", (0.01,), 0, 1000.0)
    assert m == pytest.approx(1000.0 * 4 / 3 * math.pi * 1e-6) and inertia[1] == pytest.approx(
        0.4 * m * 1e-4)
    # a capsule of zero length is a sphere; a cylinder's axial moment is m r^2 / 2
    ms, Is = mass_properties("capsule", (0.01, 0.0), 2, 1000.0)
    assert ms == pytest.approx(m) and Is[2] == pytest.approx(0.4 * m * 1e-4)
    mc, Ic = mass_properties("cylinder", (0.01, 0.02), 1, 1000.0)
    assert mc == pytest.approx(1000.0 * math.pi * 1e-4 * 0.04) and Ic[1] == pytest.approx(
        0.5 * mc * 1e-4)
    assert Ic[0] == pytest.approx(mc * (3e-4 + 0.04 ** 2) / 12)


def test_free_objects_bad_input():
    with pytest.raises(ValueError, match="not a tool of the scene"):
        gripper(free_objects={"mug": 1000.0})
    with pytest.raises(ValueError, match="density must be a finite number > 0"):
        gripper(free_objects={"cube": -1.0})
    with pytest.raises(ValueError, match="substeps=2 is not allowed with free_objects"):
        gripper(substeps=2)
    s = gripper()
    assert s.action_dim == 12 and s.state_spec["body_vel"] == (1, 6)
    assert float(s.free_masses[0]) == pytest.approx(DENSITY * (2 * H) ** 3)


@pytest.mark.slow
def test_free_fall(sim):
    """No contact: symplectic Euler, y_n = y_0 - g h^2 n (n - 1) / 2 (first order in h)."""
    T, h = 6, sim.dt
    outs = sim.rollout(sim.reset(), torch.zeros(T, sim.action_dim, dtype=F64),
                       saveat=list(range(1, T + 1)))
    k = sim.tool_index("cube")
    for n, s in enumerate(outs, 1):
        assert float(s.tool_pos[k, 1]) == pytest.approx(-9.8 * h * h * n * (n - 1) / 2,
                                                        abs=1e-15)
        assert float(s.body_vel[0, 1]) == pytest.approx(-9.8 * h * n, rel=1e-12)
        assert float(s.wrench.abs().max()) == 0.0
    # the error against the exact y_0 - g t^2 / 2 is g h t / 2: first order
    t = T * h
    err = float(outs[-1].tool_pos[k, 1]) + 9.8 * t * t / 2
    assert err == pytest.approx(9.8 * h * t / 2, rel=1e-9)


def _hold(sim, mu, T=40):
    U = squeeze_controls(sim, T, speed=(GAP + 2e-4) / (4 * sim.dt))
    outs = sim.rollout(sim.reset(), U, params={"cube.friction": mu},
                       saveat=list(range(T + 1)))
    k = sim.tool_index("cube")
    y = torch.stack([s.tool_pos[k, 1] for s in outs]).detach()
    vy = torch.stack([s.body_vel[0, 1] for s in outs]).detach()
    N = torch.tensor([normal_force(sim, s) for s in outs])
    return y, vy, N


@pytest.mark.slow
def test_friction_hold_threshold(sim):
    """Held iff 2 mu N > m g: hold at 1.5x the threshold friction, slip at 0.5x with the
    acceleration g - 2 mu N / m."""
    m, g = float(sim.free_masses[0]), 9.8
    y, vy, N = _hold(sim, 1.0)
    Nh = float(N[10:].mean())
    assert Nh > 0.1
    mu_star = m * g / (2 * Nh)
    y, vy, N = _hold(sim, 1.5 * mu_star)
    print("hold", mu_star, Nh, y[-10:].tolist(), vy[-10:].tolist())
    # held: it sags into the pads' shear compliance while they close, then stays put (but
    # for the creep of smoothed static friction, below friction_eps = 0.1 mm/s)
    assert abs(float(y[-1] - y[-10])) < 1e-5 and float(vy[-10:].abs().max()) < 2e-3
    y, vy, N = _hold(sim, 0.5 * mu_star)
    a = -(vy[30] - vy[20]) / (10 * sim.dt)
    Nm = float(N[20:31].mean())
    print("slip", float(a), g - 2 * 0.5 * mu_star * Nm / m, y[-1])
    assert float(a) == pytest.approx(g - 2 * 0.5 * mu_star * Nm / m, rel=0.05)
    assert float(y[-1]) < -5e-3


@pytest.mark.slow
def test_gradients_fd(sim):
    """d(final height)/d(squeeze speed, friction) against central differences (float64)."""
    T = 8
    k = sim.tool_index("cube")

    def height(speed, mu):
        U = squeeze_controls(sim, T, speed)
        return sim.rollout(sim.reset(), U, params={"cube.friction": mu})[-1].tool_pos[k, 1]

    speed = torch.tensor(0.3, dtype=F64, requires_grad=True)
    mu = torch.tensor(0.15, dtype=F64, requires_grad=True)
    y = height(speed, mu)
    y.backward()
    for name, var, eps in (("speed", speed, 1e-6), ("mu", mu, 1e-6)):
        with torch.no_grad():
            base = {"speed": speed.detach(), "mu": mu.detach()}
            hi = dict(base, **{name: base[name] + eps})
            lo = dict(base, **{name: base[name] - eps})
            fd = float(height(hi["speed"], hi["mu"]) - height(lo["speed"], lo["mu"])) / (2 * eps)
        print(name, float(var.grad), fd)
        assert float(var.grad) == pytest.approx(fd, rel=1e-4)
        assert abs(fd) > 1e-5
