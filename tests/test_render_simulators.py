"""diffsim.render for ds.FEM, ds.Shell and ds.Tactile: what is drawn, where, how it is shaded.

Pictures are checked against the projected geometry (silhouettes and areas from
``Camera.project`` and point-in-polygon tests, independent of the kernel), the
lighting model (Lambert + ambient + Blinn-Phong, evaluated here in numpy), the
z-buffer (which body wins where two overlap), the tactile markers (blob centres
against the projected marker positions of ``sim.read``) and determinism (same
state, same bytes). No simulator is stepped: states are built or edited directly,
so these tests cost the renderer's compile (once per session) and milliseconds each.
"""

import math

import numpy as np
import pytest
import torch
from matplotlib.path import Path
from scipy import ndimage
from scipy.spatial import ConvexHull

import diffsim as ds
from diffsim.render import Camera, Renderer
from diffsim.render.colors import BACK_SHADE, MARKER_COLOR, SPECULAR, rgb
from diffsim.render.meshes import quat_to_matrix

W, H = 96, 80
BLUE, ORANGE = ds.render.PALETTE[0], ds.render.PALETTE[1]
SHELL = dict(E=1e6, nu=0.3, thickness=3e-4, density=800.0)


@pytest.fixture(scope="module")
def r():
    renderer = Renderer(W, H, floor=False)
    yield renderer
    renderer.close()


@pytest.fixture
def flat(r):
    """ambient = 1: every pixel shows its part's colour, unshaded and without highlights."""
    old = r.ambient
    r.ambient = 1.0
    yield r
    r.ambient = old


def _is(img, color, tol=2):
    want = np.round(rgb("c", color) * 255)
    return np.all(np.abs(img.astype(int) - want) <= tol, axis=-1)


def _polygon_mask(pix: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie inside the convex hull of projected points (N, 2)."""
    hull = pix[ConvexHull(pix).vertices]
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    return Path(hull).contains_points(np.stack([jj.ravel(), ii.ravel()], 1)).reshape(H, W)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _corners(lo, hi):
    return np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)


TOP = Camera(eye=(0.5, 3.0, 0.5), target=(0.5, 0.0, 0.5), up=(0.0, 0.0, -1.0),
             projection="orthographic", ortho_height=0.6)
BOTTOM = Camera(eye=(0.5, -3.0, 0.5), target=(0.5, 0.0, 0.5), up=(0.0, 0.0, -1.0),
                projection="orthographic", ortho_height=0.6)
SLANT = Camera(eye=(1.4, 1.1, 1.7), target=(0.5, 0.25, 0.5), fov=35.0)


def _sheet(close_after, center=(0.5, 0.3, 0.5), size=(0.4, 0.3), resolution=0.05, n=1):
    scene = ds.Scene(dim=3)
    for k in range(n):
        c = (center[0], center[1] + 0.05 * k, center[2])
        scene.add_shell(ds.Rectangle(center=c, size=size), ds.ShellMaterial(**SHELL),
                        resolution=resolution, name=f"sheet{k}")
    sim = ds.Shell(scene)
    close_after(sim)
    return sim


def _block(close_after, lo=(0.35, 0.1, 0.4), hi=(0.65, 0.3, 0.6), tool=None, dim=3):
    scene = ds.Scene(dim=dim)
    scene.add_soft_body(ds.Box(lo=lo, hi=hi), ds.NeoHookean(E=1e4, nu=0.3),
                        resolution=0.05, name="jelly")
    if tool is not None:
        scene.add_tool(tool, name="pusher")
    sim = ds.FEM(scene)
    close_after(sim)
    return sim


# ---------------------------------------------------------------------- shells
@pytest.mark.parametrize("camera", [TOP, SLANT], ids=["orthographic", "perspective"])
def test_shell_sheet_covers_its_projected_rectangle(flat, close_after, camera):
    sim = _sheet(close_after)
    img = flat.render(sim, sim.reset(), camera=camera)
    got = _is(img, BLUE)
    corners = np.array([[0.3, 0.3, 0.35], [0.7, 0.3, 0.35], [0.7, 0.3, 0.65],
                        [0.3, 0.3, 0.65]])
    want = _polygon_mask(camera.project(corners, W, H)[0])
    assert want.sum() > 200
    assert _iou(got, want) > 0.95
    # the sheet fills its projection: a miss is a rim pixel of the polygon
    assert abs(int(got.sum()) - int(want.sum())) <= 0.06 * want.sum()


def test_shell_underside_shows_the_back_colour(flat, close_after):
    sim = _sheet(close_after)
    state = sim.reset()
    front = flat.render(sim, state, camera=TOP)
    back = flat.render(sim, state, camera=BOTTOM)
    c = rgb("c", BLUE)
    assert _is(front, c).sum() > 200 and _is(back, c).sum() == 0
    assert _is(back, BACK_SHADE * c).sum() == _is(front, c).sum()


@pytest.mark.parametrize("angle", [0.0, 30.0, 60.0, 75.0])
def test_shell_shading_follows_the_normal(close_after, angle):
    """A flat sheet tilted by ``angle`` about x under a light straight above: its pixels
    are colour * (ambient + (1 - ambient) cos(angle)) plus the Blinn-Phong highlight."""
    sim = _sheet(close_after)
    with Renderer(W, H, floor=False, light=(0.0, 1.0, 0.0), ambient=0.3) as rr:
        state = sim.reset()
        th = math.radians(angle)
        c0 = torch.tensor([0.5, 0.3, 0.5], dtype=state.x.dtype)
        R = torch.tensor([[1, 0, 0], [0, math.cos(th), -math.sin(th)],
                          [0, math.sin(th), math.cos(th)]], dtype=state.x.dtype)
        img = rr.render(sim, state.replace(x=(state.x - c0) @ R.T + c0), camera=TOP)
        n = R @ torch.tensor([0.0, 1.0, 0.0], dtype=R.dtype)
        light = np.array([0.0, 1.0, 0.0])
        view = -np.asarray(TOP.basis()[2])                     # towards the eye
        half = (light + view) / np.linalg.norm(light + view)
        lam = max(float(n.numpy() @ light), 0.0)
        spec = (1 - rr.ambient) * SPECULAR["shell"] * max(float(n.numpy() @ half), 0.0) ** \
            rr.shininess
        want = np.clip(rgb("c", BLUE) * (rr.ambient + (1 - rr.ambient) * lam) + spec, 0, 1)
        got = img[H // 2, W // 2].astype(float) / 255
    np.testing.assert_allclose(got, want, atol=1.5 / 255)


def test_bent_shell_is_smoothly_shaded(r, close_after):
    """A sheet bent into a half cylinder: the brightness changes gradually across it (vertex
    normals interpolated), with no step as large as the change between two faces."""
    sim = _sheet(close_after, size=(0.4, 0.3), resolution=0.025)
    state = sim.reset()
    x = state.x.clone()
    u = (x[:, 0] - 0.5) / 0.2 * (math.pi / 2)              # [-pi/2, pi/2] across the sheet
    rad = 0.4 / math.pi
    x[:, 0] = 0.5 + rad * torch.sin(u)
    x[:, 1] = 0.3 + rad * torch.cos(u)
    with Renderer(W, H, floor=False, light=(1.0, 0.0, 0.0), ambient=0.2) as rr:
        img = rr.render(sim, state.replace(x=x), camera=TOP).astype(int)
    row = img[H // 2, :, 2]
    lit = np.nonzero(row != row[0])[0]                      # the sheet (row[0]: sky)
    span = row[lit[2]:lit[-2]]
    assert span.max() - span.min() > 60                     # shading varies with the normal
    assert np.abs(np.diff(span)).max() < 0.35 * (span.max() - span.min())


def test_zbuffer_orders_overlapping_sheets(flat, close_after):
    """Two stacked sheets seen from above: the upper one hides the lower one; move the
    lower one above the other and the order flips."""
    sim = _sheet(close_after, n=2)
    state = sim.reset()
    img = flat.render(sim, state, camera=TOP)
    assert _is(img, ORANGE).sum() > 200 and _is(img, BLUE).sum() == 0
    x = state.x.clone()
    x[sim.groups["sheet0"], 1] += 0.1                      # sheet0 now 5 cm above sheet1
    img = flat.render(sim, state.replace(x=x), camera=TOP)
    assert _is(img, BLUE).sum() > 200 and _is(img, ORANGE).sum() == 0


# ---------------------------------------------------------------------- FEM solids
def test_boundary_faces_of_a_tet_box_are_closed_and_point_outwards(close_after):
    sim = _block(close_after)
    x0 = sim.rest_positions.numpy()
    faces = ds.render.boundary_faces(x0, sim.elements)
    p = x0[faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    area = 0.5 * np.linalg.norm(n, axis=1).sum()
    assert area == pytest.approx(2 * (0.3 * 0.2 + 0.3 * 0.2 + 0.2 * 0.2), rel=1e-9)
    out = p.mean(1) - x0.mean(0)
    assert np.all(np.einsum("ij,ij->i", n, out) > 0)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)                             # closed, manifold


def test_surface_normals_are_flat_on_box_faces_and_smooth_on_a_sphere():
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    s = ds.render.Surface(box.faces, box.vertices)
    v, nrm = s.corners(box.vertices)
    fn = np.repeat(box.face_normals, 3, axis=0)
    np.testing.assert_allclose(nrm, fn, atol=1e-12)        # creases stay sharp
    sphere = trimesh.creation.icosphere(subdivisions=3)
    s = ds.render.Surface(sphere.faces, sphere.vertices)
    v, nrm = s.corners(sphere.vertices)
    radial = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", nrm, radial).min() > 0.999  # smooth: close to the true normal


def test_surface_kernel_matches_the_numpy_reference():
    """``Surface.write_corners`` (the Taichi kernel the renderer uses) gives
    ``Surface.corners`` (numpy), also for degenerate faces and 2D meshes."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(0)
    x = sphere.vertices * rng.uniform(0.8, 1.2, (len(sphere.vertices), 1))
    x[sphere.faces[0]] = x[sphere.faces[0, 0]]             # one face collapsed to a point
    s = ds.render.Surface(sphere.faces, sphere.vertices)
    for pts in (x, x[:, :2]):
        want_v, want_n = s.corners(np.concatenate([pts, np.zeros((len(pts), 3 - pts.shape[1]))],
                                                  1))
        v, n = np.empty((s.n_corners, 3)), np.empty((s.n_corners, 3))
        s.write_corners(torch.as_tensor(pts), v, n)
        np.testing.assert_allclose(v, want_v, atol=1e-14)
        np.testing.assert_allclose(n, want_n, atol=1e-12)


@pytest.mark.parametrize("camera", [TOP, SLANT], ids=["orthographic", "perspective"])
def test_fem_block_silhouette_matches_its_projection(flat, close_after, camera):
    sim = _block(close_after)
    state = sim.reset()
    img = flat.render(sim, state, camera=camera)
    got = _is(img, BLUE)
    want = _polygon_mask(camera.project(_corners((0.35, 0.1, 0.4), (0.65, 0.3, 0.6)), W, H)[0])
    assert want.sum() > 150 and _iou(got, want) > 0.95
    # a moved state is drawn where it is: shift by 5 cm along x
    shifted = flat.render(sim, state.replace(x=state.x + torch.tensor([0.05, 0.0, 0.0],
                                                                      dtype=state.x.dtype)),
                          camera=camera)
    want = _polygon_mask(camera.project(_corners((0.40, 0.1, 0.4), (0.70, 0.3, 0.6)), W, H)[0])
    assert _iou(_is(shifted, BLUE), want) > 0.95


def test_fem_faces_are_shaded_by_their_orientation(r, close_after):
    """The three visible faces of a block get three different, uniform brightnesses."""
    sim = _block(close_after)
    img = r.render(sim, sim.reset(), camera=SLANT).astype(int)
    blue = (img[..., 2] - img[..., 0] > 40)
    levels, counts = np.unique(img[blue][:, 2], return_counts=True)
    big = levels[counts > 30]
    assert len(big) >= 3 and np.ptp(big) > 30


def test_tool_in_front_occludes_the_solid_and_moves_with_its_pose(flat, close_after):
    tool = ds.Box(lo=(0.45, 0.35, 0.45), hi=(0.55, 0.45, 0.55))
    sim = _block(close_after, tool=tool)
    state = sim.reset()
    img = flat.render(sim, state, camera=TOP)
    grey = _is(img, ds.render.colors.TOOL_COLOR)
    want = _polygon_mask(TOP.project(_corners((0.45, 0.35, 0.45), (0.55, 0.45, 0.55)), W, H)[0])
    assert _iou(grey, want) > 0.9 and not (_is(img, BLUE) & want).any()
    # turned 45 degrees about y: its silhouette is the turned square
    q = (math.cos(math.pi / 8), 0.0, math.sin(math.pi / 8), 0.0)
    rot = torch.tensor([q], dtype=state.tool_rot.dtype)
    img = flat.render(sim, state.replace(tool_rot=rot), camera=TOP)
    c = _corners((-0.05, -0.05, -0.05), (0.05, 0.05, 0.05)) @ quat_to_matrix(
        np.array([q]))[0].T + (0.5, 0.4, 0.5)
    assert _iou(_is(img, ds.render.colors.TOOL_COLOR), _polygon_mask(TOP.project(c, W, H)[0])) > 0.9


def test_fem_2d_triangles_fill_the_body(flat, close_after):
    sim = _block(close_after, lo=(0.3, 0.2), hi=(0.7, 0.5), dim=2)
    cam = Camera(eye=(0.5, 0.35, 2.0), target=(0.5, 0.35, 0.0), projection="orthographic",
                 ortho_height=0.5)
    img = flat.render(sim, sim.reset(), camera=cam)
    want = _polygon_mask(cam.project(np.array([[0.3, 0.2], [0.7, 0.2], [0.7, 0.5],
                                               [0.3, 0.5]]), W, H)[0])
    assert _iou(_is(img, BLUE), want) > 0.97


# ---------------------------------------------------------------------- tactile
def _tactile(close_after, free=False, hinge=False):
    scene = ds.Scene(dim=3, gravity=(0.0, -9.8, 0.0))
    scene.add_tool(ds.Box(lo=(0.015, 0.0, -0.005), hi=(0.025, 0.01, 0.005)), name="block",
                   friction=0.5)
    sensor = ds.TactileSensor(pad=ds.TactilePad.flat((0.02, 0.02, 0.004), 0.004),
                              material=ds.NeoHookean(E=3e5, nu=0.45, density=1000.0),
                              markers=(3, 3), position=(0.0, 0.0, 0.0), normal=(0.0, 1.0, 0.0),
                              name="pad")
    kw = {}
    if free:
        kw["free_objects"] = {"block": 1e4}
    if hinge:
        kw["hinges"] = {"block": ds.Hinge(anchor=(0.015, 0.0, 0.0), axis=(0.0, 0.0, 1.0))}
    sim = ds.Tactile(scene, sensors=[sensor], **kw)
    close_after(sim)
    return sim, sensor


TACTILE_TOP = Camera(eye=(0.005, 0.2, 0.0), target=(0.005, 0.0, 0.0), up=(0.0, 0.0, -1.0),
                     projection="orthographic", ortho_height=0.04)


def test_tactile_markers_appear_where_they_project(flat, close_after):
    sim, sensor = _tactile(close_after)
    state = sim.reset()
    # press the middle of the pad down 1 mm: the markers move with the surface
    x = state.x.clone()
    sl = sim.groups["pad"]
    d = torch.exp(-((x[sl, 0] ** 2 + x[sl, 2] ** 2) / 0.006 ** 2)) * 1e-3
    x[sl, 1] -= d * (x[sl, 1] > 0.002)
    x[sl, 0] += 0.5 * d * (x[sl, 1] > 0.002)
    state = state.replace(x=x)
    img = flat.render(sim, state, camera=TACTILE_TOP)
    labels, n = ndimage.label(_is(img, MARKER_COLOR))
    assert n == 9
    got = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, range(1, n + 1)))
    # the reading's marker positions (finger frame) moved to the world by the finger's pose
    reading = sim.read(state, image=False)
    k = sim.tool_index("pad_finger")
    R = quat_to_matrix(state.tool_rot[k].numpy()[None])[0]
    world = reading.marker_positions.numpy() @ R.T + state.tool_pos[k].numpy()
    pix = TACTILE_TOP.project(world, W, H)[0]                # (col, row)
    dist = np.linalg.norm(got[:, None, ::-1] + 0.5 - pix[None], axis=-1)
    assert np.all(dist.min(1) < 0.35) and len(set(dist.argmin(1))) == 9


def test_tactile_image_beside_the_scene(r, close_after):
    sim, _ = _tactile(close_after)
    state = sim.reset()
    img = r.render(sim, state, tactile_image=True)
    scene_only = r.render(sim, state)
    w, h = sim.sensors[0].camera.resolution
    tile_w = round(w * H / h)
    assert img.shape == (H, W + 2 + tile_w, 3)
    np.testing.assert_array_equal(img[:, :W], scene_only)
    tactile = sim.read(state).image.numpy()
    rows = np.minimum((np.arange(H) + 0.5) * h / H, h - 1).astype(int)
    cols = np.minimum((np.arange(tile_w) + 0.5) * w / tile_w, w - 1).astype(int)
    np.testing.assert_array_equal(img[:, W + 2:], np.round(tactile[rows][:, cols] * 255))
    fem = _block(close_after)
    with pytest.raises(ValueError, match="tactile_image=True is not allowed for a FEM"):
        r.render(fem, fem.reset(), tactile_image=True)


def test_free_hinged_body_is_drawn_at_its_pose(flat, close_after):
    """A hinged free box turned by 30 degrees about its hinge: its silhouette seen along the
    hinge axis is the turned rectangle; the hinge pin is drawn through the anchor."""
    sim, _ = _tactile(close_after, free=True, hinge=True)
    state = sim.reset()
    k = sim.tool_index("block")
    th = math.radians(30.0)
    q = torch.tensor([math.cos(th / 2), 0.0, 0.0, math.sin(th / 2)], dtype=state.x.dtype)
    Rz = quat_to_matrix(q.numpy()[None])[0]
    anchor = np.array([0.015, 0.0, 0.0])
    centre = Rz @ (np.array([0.02, 0.005, 0.0]) - anchor) + anchor
    pos, rot = state.tool_pos.clone(), state.tool_rot.clone()
    pos[k] = torch.as_tensor(centre)
    rot[k] = q
    side = Camera(eye=(0.02, 0.005, 0.3), target=(0.02, 0.005, 0.0), projection="orthographic",
                  ortho_height=0.04)
    img = flat.render(sim, state.replace(tool_pos=pos, tool_rot=rot), camera=side)
    body = _is(img, BLUE)                                  # free objects take body colours
    c = (_corners((0.015, 0.0, -0.005), (0.025, 0.01, 0.005)) - anchor) @ Rz.T + anchor
    want = _polygon_mask(side.project(c, W, H)[0])
    assert want.sum() > 100 and _iou(body, want) > 0.9
    pin = _is(img, ds.render.colors.HINGE_COLOR)
    pix = side.project(anchor[None], W, H)[0][0]
    assert pin[int(pix[1]) - 1:int(pix[1]) + 2, int(pix[0]) - 1:int(pix[0]) + 2].any()


# ---------------------------------------------------------------------- all simulators
def test_pictures_are_deterministic_and_renderers_agree(close_after):
    sims = [_sheet(close_after), _block(close_after), _tactile(close_after, free=True)[0]]
    with Renderer(W, H) as a, Renderer(W, H) as b:
        for sim in sims:
            state = sim.reset()
            x = state.x + 1e-3 * torch.sin(40.0 * state.x)  # a deformed state
            state = state.replace(x=x)
            first = a.render(sim, state)
            assert np.array_equal(first, a.render(sim, state))
            assert np.array_equal(first, b.render(sim, state))


def test_default_view_frames_each_scene(close_after):
    """Without a camera the bodies fill a good part of the picture (the framing follows
    the content, not a unit-cube domain: tactile pads are 2 cm)."""
    sims = [_sheet(close_after), _block(close_after), _tactile(close_after)[0]]
    with Renderer(W, H) as rr:
        for sim in sims:
            img = rr.render(sim, sim.reset())
            bg = rr.render_points(np.zeros((0, 3)), camera=rr._drawing.camera,
                                  floor=rr._drawing.floor)
            drawn = np.any(img != bg, axis=-1).mean()
            assert 0.08 < drawn < 0.9, (type(sim).__name__, drawn)


def test_bad_input_names_the_problem(r, close_after):
    sim = _block(close_after)
    state = sim.reset()
    with pytest.raises(ValueError, match=r"state.x has shape \(3, 3\)"):
        r.render(sim, ds.State(x=torch.zeros(3, 3), tool_pos=state.tool_pos,
                               tool_rot=state.tool_rot))
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['lava'\]"):
        r.render(sim, state, colors={"lava": "red"})
    with pytest.raises(TypeError, match="the renderer draws ds.MPM, ds.FEM"):
        r.render(object(), state)
    img = r.render(sim, state, colors={"jelly": "tab:red"})
    assert (img[..., 0].astype(int) - img[..., 2] > 60).sum() > 50


def test_export_state_refuses_mesh_simulators_clearly(tmp_path, close_after):
    sim = _block(close_after)
    with pytest.raises(TypeError, match="export_state writes the particles of a ds.MPM"):
        ds.render.export_state(sim, sim.reset(), tmp_path / "x.ply")


def test_gravity_sets_the_up_axis_and_the_floor(close_after):
    """Scenes whose gravity pulls along -z (the tactile tasks SurfaceFollow and
    CableStraighten) are drawn with z up: a higher point is higher in the picture, and the
    floor is a z plane under the bodies."""
    cam = Camera.framing([(0, 1), (0, 1), (0, 1)], up_axis=2)
    assert cam.up == (0.0, 0.0, 1.0)
    (lo_pix, hi_pix), _ = cam.project(np.array([[0.5, 0.5, 0.2], [0.5, 0.5, 0.8]]), W, H)
    assert hi_pix[1] < lo_pix[1] - 10                      # rows grow downwards
    scene = ds.Scene(dim=3, gravity=(0.0, 0.0, -9.8))
    scene.add_soft_body(ds.Box(lo=(0.4, 0.4, 0.3), hi=(0.6, 0.6, 0.5)),
                        ds.NeoHookean(E=1e4, nu=0.3), resolution=0.05, name="jelly")
    sim = ds.FEM(scene)
    close_after(sim)
    with Renderer(W, H) as rr:
        rr.render(sim, sim.reset())
        d = rr._drawing
        assert d.camera.up == (0.0, 0.0, 1.0)
        assert d.floor.axis == 2 and d.floor.level == pytest.approx(0.0)   # the domain's bottom
