"""ds.Tactile with an MPM object: weight on a pad, momentum, free fall, gradients, bad input.

The fast tests share one simulator: a 6 mm elastic block (1728 particles) resting on an
upward-facing 10 x 10 x 3 mm pad (50 nodes); a dent/recovery check and a rod dragged by
two pads are slow.
"""

import pytest
import torch
from helpers import small_pad_sensor

import diffsim as ds

F64 = torch.float64
G = 9.8
BOUNDS = [(-0.01, 0.01), (-0.01, 0.01), (-0.006, 0.014)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


pad_sensor = small_pad_sensor


def block_sim(material=None, gap=0.0, **kw):
    scene = ds.Scene(dim=3, bounds=BOUNDS, gravity=(0.0, 0.0, -G))
    scene.add_particles(ds.Box(lo=(-0.003, -0.003, 0.003 + gap), hi=(0.003, 0.003, 0.009 + gap)),
                        material or ds.NeoHookean(E=1e5, nu=0.3, density=1000.0), name="block")
    opts = dict(dt=3e-4, mpm_grid_res=20, mpm_substeps=4, contact_stiffness=1e7,
                contact_damping=2.5e4, newton_tol=1e-12, cg_tol=1e-12)
    opts.update(kw)
    return ds.Tactile(scene, sensors=[pad_sensor()], **opts)


@pytest.fixture(scope="module")
def sim():
    s = block_sim()
    s._engine_for(1, True)     # one pad engine (with gradients) serves every fast test
    yield s
    s.close()


def momentum(sim, state):
    m = sim.mpm_coupling.mass.to(state.particle_v)
    return (m[:, None] * state.particle_v).sum(0)


def test_state_and_names(sim):
    st = sim.reset()
    n = sim.mpm_coupling.mpm.n_particles
    assert st.particle_x.shape == (n, 3) and st.particle_F.shape == (n, 3, 3)
    assert st.f_mpm.shape == st.f.shape and st.wrench.shape == (1, 6)
    assert "block.E" in sim.param_names() and "block.contact_stiffness" in sim.param_names()
    assert sim.action_dim == 6
    assert "block" in repr(sim)


@pytest.mark.slow  # 40-100 s on 2 cores: the fast suite keeps test_tactile.py's cases
def test_no_contact_free_fall(sim):
    st = sim.reset()
    st.tool_pos = st.tool_pos - torch.tensor([[0.0, 0.0, 0.002]], dtype=F64)   # pad 2 mm lower
    U = torch.zeros(3, sim.action_dim, dtype=F64)
    U[:, 0] = 0.01
    end = sim.rollout(st, U)[-1]
    assert float(end.f.abs().max()) == 0.0 and float(end.f_mpm.abs().max()) == 0.0
    assert float(end.wrench.abs().max()) == 0.0
    r = sim.read(end, image=False)
    assert float(r.force.abs().max()) == 0.0
    # the block falls freely: every particle at -g t (MPM transfers keep a uniform field)
    vz = end.particle_v[:, 2]
    t = 3 * sim.dt
    assert torch.allclose(vz, torch.full_like(vz, -G * t), rtol=1e-9, atol=0)


def test_weight_on_pad_and_momentum(sim):
    """The block settles on the pad: its normal force is m g; every step the particles get
    exactly the opposite of the pads' contact impulse (plus gravity's)."""
    st = sim.reset()
    M = float(sim.mpm_coupling.mass.sum())
    h = sim.dt
    g = torch.tensor([0.0, 0.0, -G], dtype=F64)
    U = torch.zeros(1, sim.action_dim, dtype=F64)
    forces = []
    for _ in range(70):
        nxt = sim.rollout(st, U)[-1]
        dp = momentum(sim, nxt) - momentum(sim, st)
        expect = h * (-nxt.f_mpm.sum(0)) + h * M * g
        assert torch.allclose(dp, expect, rtol=1e-9, atol=1e-12 * h * M * G)
        # the MPM object is the only object: its forces are all the pad's contact forces
        assert torch.equal(nxt.f_mpm, nxt.f)
        assert torch.allclose(nxt.wrench[0, :3], -nxt.f_mpm.sum(0), rtol=1e-12, atol=1e-18)
        forces.append(-float(sim.read(nxt, image=False).force[2]))
        st = nxt
    tail = forces[-15:]
    assert min(tail) > 0
    assert sum(tail) / len(tail) == pytest.approx(M * G, rel=0.03)


def test_impulse_conserves_momentum(sim):
    c = sim.mpm_coupling
    st = sim.reset()
    sten, rho, _phi, _mom = c.fields(st.particle_x, st.particle_v)
    gen = torch.Generator().manual_seed(0)
    y = st.particle_x[:40] + 1e-4 * torch.randn(40, 3, generator=gen, dtype=F64)
    f = torch.randn(40, 3, generator=gen, dtype=F64)
    dv = c.impulse(sten, rho, y, f, 1e-3)
    J = (c.mass[:, None] * dv).sum(0)
    assert torch.allclose(J, 1e-3 * f.sum(0), rtol=1e-12, atol=1e-15)


@pytest.mark.slow  # 60-120 s on 2 cores (the coupling's reverse kernels compile); the fast suite checks
# adjoint.stepwise_rollout on a torch step (tests/test_solve.py)
def test_segment_checkpointing_keeps_the_gradient_and_drops_the_steps_tensors(sim):
    """Coupled steps run one at a time through torch; with ``segment=K < T`` each K steps
    are checkpointed (``adjoint.stepwise_rollout``): the gradient is bitwise the one of
    the unsegmented rollout (deterministic CPU: the recomputed steps are the forward's),
    the saved states are the same, and autograd keeps none of the steps' tensors."""
    st0 = sim.reset()
    st0.particle_x = st0.particle_x - torch.tensor([0.0, 0.0, 3e-5], dtype=F64)
    T = 4

    def run(segment):
        vz = torch.tensor(0.02, dtype=F64, requires_grad=True)
        E = torch.tensor(1e5, dtype=F64, requires_grad=True)
        U = torch.zeros(T, sim.action_dim, dtype=F64)
        U[:, 2] = vz
        U[:, 0] = 0.02
        saved = []

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            mid, end = sim.rollout(st0, U, params={"block.E": E}, saveat=[1, T], segment=segment)
        loss = -sim.read(end, image=False).force[2] + 10 * end.particle_x[:, 2].mean() \
            + 5 * mid.particle_v[:, 2].mean()
        loss.backward()
        return (float(loss.detach()), vz.grad, E.grad, mid.particle_x.detach(), sum(saved))

    plain, seg = run(T), run(2)
    assert plain[0] == seg[0]
    assert torch.equal(plain[1], seg[1]) and torch.equal(plain[2], seg[2]), (plain[1:3], seg[1:3])
    assert torch.equal(plain[3], seg[3])
    assert float(plain[1]) != 0.0 and float(plain[2]) != 0.0
    # every step's tensors (particle grids, pad solves: 24 MB for these 4 steps) are behind
    # the checkpoints; what autograd keeps is the loss's own few hundred bytes
    assert seg[4] < 1e-4 * plain[4], (seg[4], plain[4])


@pytest.mark.slow  # 40-100 s on 2 cores: the fast suite keeps test_tactile.py's cases
def test_gradients_match_finite_differences(sim):
    """d(reading + particle terms) / d(finger velocity, block E, block contact stiffness)
    through 3 coupled steps with the block pressed in and a finger sliding."""
    st0 = sim.reset()
    st0.particle_x = st0.particle_x - torch.tensor([0.0, 0.0, 3e-5], dtype=F64)

    def loss(vz, E, kn):
        U = torch.zeros(3, sim.action_dim, dtype=F64)
        U[:, 2] = vz
        U[:, 0] = 0.02
        end = sim.rollout(st0, U, params={"block.E": E, "block.contact_stiffness": kn})[-1]
        r = sim.read(end, image=False)
        return (-r.force[2] + 3 * r.force[0] + 10 * end.particle_x[:, 2].mean()
                + 1e3 * end.particle_v.pow(2).sum())

    vals = {"vz": 0.02, "E": 1e5, "kn": 1e7}
    steps = {"vz": 1e-5, "E": 10.0, "kn": 1e3}
    p = {k: torch.tensor(v, dtype=F64, requires_grad=True) for k, v in vals.items()}
    loss(p["vz"], p["E"], p["kn"]).backward()
    for k in vals:
        with torch.no_grad():
            up = {**vals, k: vals[k] + steps[k]}
            dn = {**vals, k: vals[k] - steps[k]}
            lp = float(loss(*(torch.tensor(up[n], dtype=F64) for n in vals)))
            lm = float(loss(*(torch.tensor(dn[n], dtype=F64) for n in vals)))
        fd = (lp - lm) / (2 * steps[k])
        ad = float(p[k].grad)
        assert fd != 0.0
        assert abs(ad - fd) <= 1e-4 * abs(fd), (k, ad, fd)


def test_bad_input():
    sensor = pad_sensor()

    def scene(n_bodies=1):
        s = ds.Scene(dim=3, bounds=BOUNDS, gravity=(0.0, 0.0, -G))
        for i in range(n_bodies):
            s.add_particles(ds.Box(lo=(-0.003, -0.003, 0.003 + 0.004 * i),
                                   hi=(0.003, 0.003, 0.006 + 0.004 * i)),
                            ds.NeoHookean(E=1e5, nu=0.3, density=1000.0), name=f"b{i}")
        return s

    with pytest.raises(ValueError, match="exactly one MPM object"):
        ds.Tactile(scene(2), sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    with pytest.raises(ValueError, match="mpm_grid_res=4 is not allowed"):
        ds.Tactile(scene(), sensors=[sensor], dt=3e-4, mpm_grid_res=4)
    with pytest.raises(ValueError, match="mpm_substeps=0 is not allowed"):
        ds.Tactile(scene(), sensors=[sensor], dt=3e-4, mpm_substeps=0, mpm_grid_res=20)
    with pytest.raises(ValueError, match="mpm_friction=-1"):
        ds.Tactile(scene(), sensors=[sensor], dt=3e-4, mpm_friction=-1.0, mpm_grid_res=20)
    with pytest.raises(ValueError, match="substeps=2 is not allowed with an MPM"):
        ds.Tactile(scene(), sensors=[sensor], dt=3e-4, substeps=2, mpm_grid_res=20)
    with pytest.raises(ValueError, match="stability bound.*mpm_substeps|mpm_substeps.*stability"):
        ds.Tactile(scene(), sensors=[sensor], dt=1e-2, mpm_substeps=1)
    s = scene()
    s.add_tool(ds.Sphere(center=(0.0, 0.0, 0.012), radius=0.001), name="ball")
    with pytest.raises(ValueError, match="free_objects=.*not allowed together with an MPM"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4, free_objects={"ball": 1e3}, mpm_grid_res=20)
    s = scene()
    s.add_soft_body(ds.Box(lo=(0.004, 0.004, 0.004), hi=(0.006, 0.006, 0.006)),
                    ds.NeoHookean(E=1e5, nu=0.3), resolution=0.002)
    with pytest.raises(ValueError, match="scene.soft_bodies .* not allowed together with an MPM"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4)
    sim = ds.Tactile(scene(), sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    try:
        with pytest.raises(ValueError, match="unknown name 'b0.yield_stress'"):
            sim.rollout(sim.reset(), torch.zeros(1, 6, dtype=F64),
                        params={"b0.yield_stress": 1.0})
        with pytest.raises(ValueError, match="b0"):
            sim.rollout(sim.reset(), torch.zeros(1, 6, dtype=F64), params={"b0.E": -1.0})
    finally:
        sim.close()


def dent_depth(material, press_steps=50, speed=0.07, rest_steps=100):
    """A 6 x 6 mm pad pressed down into an 8 mm block on the floor (the MPM domain's bottom
    wall), then lifted off: returns (press depth, mean depth left under the pad over the
    last 60 steps: the elastic block keeps vibrating, undamped)."""
    scene = ds.Scene(dim=3, bounds=[(-0.01, 0.01), (-0.01, 0.01), (-0.003, 0.017)],
                     gravity=(0.0, 0.0, -G))
    scene.add_particles(ds.Box(lo=(-0.004, -0.004, 0.0002), hi=(0.004, 0.004, 0.0062)),
                        material, name="block")
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.006, 0.006, 0.003), 0.002),
                              material=ds.NeoHookean(E=1e5, nu=0.4, density=1000.0),
                              markers=(3, 3), camera=ds.TactileCamera(resolution=(12, 10)),
                              pressure_res=(4, 4), position=(0.0, 0.0, 0.0062 + 0.003 + 2e-4),
                              normal=(0.0, 0.0, -1.0))
    sim = ds.Tactile(scene, sensors=[sensor], dt=3e-4, mpm_grid_res=20, mpm_substeps=4,
                     contact_stiffness=1e7, contact_damping=2.5e4)
    try:
        st = sim.reset()

        def top(x):
            centre = (x[:, 0].abs() < 0.0015) & (x[:, 1].abs() < 0.0015)
            return float(x[centre, 2].max())
        T = 2 * press_steps + rest_steps
        U = torch.zeros(T, sim.action_dim, dtype=F64)
        U[:press_steps, 2] = -speed
        U[press_steps:2 * press_steps, 2] = speed
        states = sim.rollout(st, U, saveat=[press_steps] + list(range(T - 59, T + 1)))
        assert float(sim.read(states[0], image=False).force[2]) < 0   # pushed back
        assert float(sim.read(states[-1], image=False).force.abs().max()) == 0   # let go
        z0 = top(st.particle_x)
        left = [z0 - top(s.particle_x) for s in states[1:]]
        return z0 - top(states[0].particle_x), sum(left) / len(left)
    finally:
        sim.close()


@pytest.mark.slow
def test_plasticine_keeps_a_dent_elastic_recovers():
    d_press, d_plastic = dent_depth(ds.Plasticine(E=1e5, nu=0.3, yield_stress=2e3,
                                                  density=1000.0))
    assert d_press > 0.4e-3
    assert d_plastic > 0.5 * d_press                    # a permanent dent
    d_press_e, d_elastic = dent_depth(ds.NeoHookean(E=1e5, nu=0.3, density=1000.0))
    assert d_press_e > 0.4e-3
    assert abs(d_elastic) < 0.25 * d_press_e            # recovered (on average: it vibrates)


@pytest.mark.slow
def test_rod_end_squeezed_and_dragged():
    """CableStraighten-like, tiny: an elastic MPM rod (3 x 3 mm, 6 cells thick: the level set
    needs a few cells) on the floor, one end squeezed between two pads and dragged along the
    rod: the end follows the pads (friction through the level-set contact) and pulls the
    rod along the floor. No normal damping: friction takes the penalty's normal force only,
    so a damping-dominated squeeze would slip (see the README's limitations)."""
    scene = ds.Scene(dim=3, bounds=[(-0.014, 0.014), (-0.008, 0.008), (-0.0015, 0.0065)],
                     gravity=(0.0, 0.0, -G))
    scene.add_particles(ds.Box(lo=(-0.010, -0.0015, 0.0), hi=(0.002, 0.0015, 0.003)),
                        ds.NeoHookean(E=5e4, nu=0.3, density=1000.0), name="rod")
    pad = ds.TactilePad.flat((0.004, 0.004, 0.002), 0.001)
    gap = 0.0015 + 0.002 + 1e-4
    gel = ds.NeoHookean(E=1e5, nu=0.4, density=1000.0)
    sensors = [ds.TactileSensor(pad=pad, material=gel, markers=(3, 3), position=(0.0, -gap, 0.0015),
                                normal=(0.0, 1.0, 0.0), name="left"),
               ds.TactileSensor(pad=pad, material=gel, markers=(3, 3), position=(0.0, gap, 0.0015),
                                normal=(0.0, -1.0, 0.0), name="right")]
    sim = ds.Tactile(scene, sensors=sensors, dt=2e-4, mpm_grid_res=56, mpm_substeps=4,
                     contact_stiffness=2e6, contact_damping=0.0, mpm_friction=1.0)
    try:
        st = sim.reset()
        x0 = st.particle_x
        squeeze, drag, speed = 20, 50, 0.1
        U = torch.zeros(squeeze + drag, sim.action_dim, dtype=F64)
        U[:squeeze, 1] = 0.05                      # left pad closes along +y (0.2 mm)
        U[:squeeze, 7] = -0.05                     # right pad along -y
        U[squeeze:, 0] = speed                     # then both drag along +x (1 mm)
        U[squeeze:, 6] = speed
        end = sim.rollout(st, U)[-1]
        dist = speed * drag * sim.dt
        dx = end.particle_x[:, 0] - x0[:, 0]
        held = x0[:, 0] > -0.002
        far = x0[:, 0] < -0.008
        rl, rr = sim.read(end, image=False)
        assert float(rl.force[2]) < 0 and float(rr.force[2]) < 0       # both pads squeeze
        assert float(dx[held].mean()) > 0.6 * dist                       # the end follows
        assert float(dx[far].mean()) > 0.3 * dist                        # and pulls the rod
        assert float(dx[held].mean()) < 1.05 * dist
        assert float(end.particle_x[:, 2].min()) > -1e-4                 # on the floor
    finally:
        sim.close()
