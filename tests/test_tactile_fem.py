"""ds.Tactile with an FEM object: weight on a pad, momentum, free fall, gradients, bad input.

The fast tests share one simulator: a 6 mm NeoHookean block (343 nodes, 1296 tets, 4
sample points per tet) resting on an upward-facing 10 x 10 x 3 mm pad (50 nodes); the
level-set grid is 1 mm (``mpm_grid_res=20`` over 20 mm), the tets 1 mm.
"""

import pytest
import torch
from helpers import assert_grads_match_fd, small_pad_sensor

import diffsim as ds

F64 = torch.float64
G = 9.8
BOUNDS = [(-0.01, 0.01), (-0.01, 0.01), (-0.006, 0.014)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


pad_sensor = small_pad_sensor


def block_scene(gap=0.0, fixed=None):
    scene = ds.Scene(dim=3, bounds=BOUNDS, gravity=(0.0, 0.0, -G))
    scene.add_soft_body(ds.Box(lo=(-0.003, -0.003, 0.003 + gap), hi=(0.003, 0.003, 0.009 + gap)),
                        ds.NeoHookean(E=1e5, nu=0.3, density=1000.0), resolution=0.001,
                        fixed=fixed, name="block")
    return scene


def block_sim(**kw):
    opts = dict(dt=3e-4, mpm_grid_res=20, contact_stiffness=1e7, contact_damping=2.5e4,
                newton_tol=1e-12, cg_tol=1e-12)
    opts.update(kw)
    return ds.Tactile(block_scene(), sensors=[pad_sensor()], **opts)


@pytest.fixture(scope="module")
def sim():
    s = block_sim()
    s._engine_for(1, True)                  # one pad engine (with gradients) for every test
    s.fem_coupling.fem._engine_for(1, True)   # and one for the block
    yield s
    s.close()


def momentum(sim, state):
    return (sim.fem_coupling.node_mass[:, None] * state.object_v).sum(0)


def test_state_and_names(sim):
    st = sim.reset()
    n = sim.fem_coupling.fem.n_nodes
    assert st.object_x.shape == (n, 3) and st.object_v.shape == (n, 3)
    assert st.f_mpm.shape == st.f.shape and st.wrench.shape == (1, 6)
    names = sim.param_names()
    assert "block.E" in names and "block.nu" in names and "block.contact_stiffness" in names
    assert sim.action_dim == 6 and sim.mpm_coupling is None
    assert "block" in repr(sim)
    # every tet's mass goes to its samples, and the samples' weights give the lumped masses
    c = sim.fem_coupling
    assert float(c.mass.sum()) == pytest.approx(float(c.node_mass.sum()), rel=1e-14)
    assert float(c.mass.sum()) == pytest.approx(1000.0 * 0.006 ** 3, rel=1e-12)


@pytest.mark.slow  # 40-100 s on 2 cores: the fast suite keeps test_tactile.py's cases
def test_no_contact_free_fall(sim):
    st = sim.reset()
    st.tool_pos = st.tool_pos - torch.tensor([[0.0, 0.0, 0.002]], dtype=F64)   # pad 2 mm lower
    U = torch.zeros(3, sim.action_dim, dtype=F64)
    U[:, 0] = 0.01
    end = sim.rollout(st, U)[-1]
    assert float(end.f.abs().max()) == 0.0 and float(end.f_mpm.abs().max()) == 0.0
    assert float(end.wrench.abs().max()) == 0.0
    assert float(sim.read(end, image=False).force.abs().max()) == 0.0
    # the block falls freely: implicit Euler under uniform gravity, every node at -g t
    t = 3 * sim.dt
    vz = end.object_v[:, 2]
    assert torch.allclose(vz, torch.full_like(vz, -G * t), rtol=1e-8, atol=0)
    assert float(end.object_v[:, :2].abs().max()) < 1e-10
    dz = end.object_x[:, 2] - st.object_x[:, 2]
    assert torch.allclose(dz, torch.full_like(dz, -G * sim.dt ** 2 * 6), rtol=1e-8, atol=0)


def test_weight_on_pad_and_momentum(sim):
    """The block settles on the pad: the pad's normal force is m g; every step the nodes get
    exactly the opposite of the pads' contact impulse (plus gravity's)."""
    st = sim.reset()
    M = float(sim.fem_coupling.node_mass.sum())
    h = sim.dt
    g = torch.tensor([0.0, 0.0, -G], dtype=F64)
    U = torch.zeros(1, sim.action_dim, dtype=F64)
    forces = []
    for _ in range(60):
        nxt = sim.rollout(st, U)[-1]
        dp = momentum(sim, nxt) - momentum(sim, st)
        expect = h * (-nxt.f_mpm.sum(0)) + h * M * g
        # elastic forces cancel in sum up to the Newton tolerance
        assert torch.allclose(dp, expect, rtol=0, atol=1e-9 * h * M * G)
        assert torch.equal(nxt.f_mpm, nxt.f)
        assert torch.allclose(nxt.wrench[0, :3], -nxt.f_mpm.sum(0), rtol=1e-12, atol=1e-18)
        forces.append(-float(sim.read(nxt, image=False).force[2]))
        st = nxt
    tail = forces[-15:]
    assert min(tail) > 0
    assert sum(tail) / len(tail) == pytest.approx(M * G, rel=0.02)
    assert float(st.object_x[:, 2].min()) > 0.0029      # resting on the pad, not through it


def test_impulse_transfer_conserves_momentum(sim):
    c = sim.fem_coupling
    st = sim.reset()
    xs, vs = c.samples(st)
    sten, rho, _phi, _mom = c.fields(xs, vs)
    gen = torch.Generator().manual_seed(0)
    # points inside the block (contact points have rho >= rho_0 / 2 > rho_min, the floor of
    # the kernel's normalisation; at its corners the smoothed density is below it)
    y = xs[::130][:40] + 1e-4 * torch.randn(40, 3, generator=gen, dtype=F64)
    assert len(y) == 40
    f = torch.randn(40, 3, generator=gen, dtype=F64)
    dv = c.impulse(sten, rho, y, f, 1e-3)
    J = c.mass[:, None] * dv
    assert torch.allclose(J.sum(0), 1e-3 * f.sum(0), rtol=1e-12, atol=1e-15)
    Jn = c.node_impulse(J)
    assert torch.allclose(Jn.sum(0), J.sum(0), rtol=1e-12, atol=1e-18)
    # samples moving with the nodes: the sample momentum is the nodes' momentum
    v = torch.randn(c.fem.n_nodes, 3, generator=gen, dtype=F64)
    ps = (c.mass[:, None] * c._at_samples(v)).sum(0)
    assert torch.allclose(ps, (c.node_mass[:, None] * v).sum(0), rtol=1e-12)


@pytest.mark.slow  # 40-100 s on 2 cores: the fast suite keeps test_tactile.py's cases
def test_gradients_match_finite_differences(sim):
    """d(reading + node terms) / d(finger velocity, block E) through 3 coupled steps with the
    block pressed in and the finger sliding."""
    st0 = sim.reset()
    st0.object_x = st0.object_x - torch.tensor([0.0, 0.0, 3e-5], dtype=F64)

    def loss(vz, E):
        U = torch.zeros(3, sim.action_dim, dtype=F64)
        U[:, 2] = vz
        U[:, 0] = 0.02
        end = sim.rollout(st0, U, params={"block.E": E})[-1]
        r = sim.read(end, image=False)
        return (-r.force[2] + 3 * r.force[0] + 10 * end.object_x[:, 2].mean()
                + 1e3 * end.object_v.pow(2).sum())

    args = [torch.tensor(0.02, dtype=F64), torch.tensor(1e5, dtype=F64)]
    assert_grads_match_fd(loss, args, [(0, None, 1e-5), (1, None, 10.0)], rtol=1e-4)


def test_bad_input():
    sensor = pad_sensor()
    s = block_scene()
    s.add_soft_body(ds.Box(lo=(0.004, 0.004, 0.004), hi=(0.006, 0.006, 0.006)),
                    ds.NeoHookean(E=1e5, nu=0.3), resolution=0.001, name="other")
    with pytest.raises(ValueError, match="scene.soft_bodies has 2 .*exactly one FEM object"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    s = block_scene()
    s.add_particles(ds.Box(lo=(0.004, 0.004, 0.004), hi=(0.006, 0.006, 0.006)),
                    ds.NeoHookean(E=1e5, nu=0.3), name="jelly")
    with pytest.raises(ValueError, match="scene.soft_bodies .* not allowed together with an MPM"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    with pytest.raises(ValueError, match="mpm_grid_res=4 is not allowed"):
        ds.Tactile(block_scene(), sensors=[sensor], dt=3e-4, mpm_grid_res=4)
    with pytest.raises(ValueError, match="substeps=2 is not allowed with an FEM soft body"):
        ds.Tactile(block_scene(), sensors=[sensor], dt=3e-4, substeps=2, mpm_grid_res=20)
    with pytest.raises(ValueError, match="fem_contact_stiffness=-1"):
        ds.Tactile(block_scene(), sensors=[sensor], dt=3e-4, fem_contact_stiffness=-1.0)
    s = block_scene()
    s.add_tool(ds.Sphere(center=(0.0, 0.0, 0.012), radius=0.001), name="ball")
    with pytest.raises(ValueError, match="free_objects=.*not allowed together with an FEM"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4, free_objects={"ball": 1e3}, mpm_grid_res=20)
    s = ds.Scene(dim=3, bounds=[(-0.01, 0.01), (-0.01, 0.01), (-0.006, 0.0095)],
                 gravity=(0.0, 0.0, -G))
    s.add_soft_body(ds.Box(lo=(-0.003, -0.003, 0.003), hi=(0.003, 0.003, 0.009)),
                    ds.NeoHookean(E=1e5, nu=0.3), resolution=0.001, name="block")
    with pytest.raises(ValueError, match="scene.bounds=.*margin"):
        ds.Tactile(s, sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    sim = ds.Tactile(block_scene(), sensors=[sensor], dt=3e-4, mpm_grid_res=20)
    try:
        with pytest.raises(ValueError, match="unknown name 'block.yield_stress'"):
            sim.rollout(sim.reset(), torch.zeros(1, 6, dtype=F64),
                        params={"block.yield_stress": 1.0})
        with pytest.raises(ValueError, match="block"):
            sim.rollout(sim.reset(), torch.zeros(1, 6, dtype=F64), params={"block.E": -1.0})
    finally:
        sim.close()
