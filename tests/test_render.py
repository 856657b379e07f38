"""diffsim.render: images, depth test, projection, tools, 2D, animation, export, bad input.

One module-scoped renderer serves most tests (the kernel compiles once per
point dimension: about a second each). Its size is not square so that a
swapped width/height shows.
"""

import numpy as np
import pytest
import torch
import trimesh

import diffsim as ds
from diffsim.render import Camera, Floor, Renderer

W, H = 64, 48


@pytest.fixture(scope="module")
def r():
    renderer = Renderer(W, H, floor=False)
    yield renderer
    renderer.close()


@pytest.fixture
def flat(r):
    """The renderer with ambient = 1: every pixel shows its object's colour unshaded."""
    old = r.ambient
    r.ambient = 1.0
    yield r
    r.ambient = old


def _scene3d(tool=True):
    scene = ds.Scene(dim=3)
    scene.add_particles(ds.Box(lo=(0.35, 0.2, 0.35), hi=(0.65, 0.4, 0.65)), ds.Fluid(),
                        name="water")
    scene.add_particles(ds.Sphere(center=(0.5, 0.6, 0.5), radius=0.08), ds.NeoHookean(),
                        name="jelly")
    if tool:
        scene.add_tool(ds.Sphere(center=(0.8, 0.3, 0.5), radius=0.08), name="ball")
    return scene


def _background(r, camera):
    return r.render_points(np.zeros((0, 3)), camera=camera)


def _is_rgb(img, rgb, tol=3):
    return np.all(np.abs(img.astype(int) - np.round(np.asarray(rgb) * 255)) <= tol, axis=-1)


CAM = Camera(eye=(0.0, 0.0, 5.0), target=(0.0, 0.0, 0.0), fov=90.0)


# ---------------------------------------------------------------------- basics
def test_render_state_shape_dtype_and_content(r, close_after):
    sim = ds.MPM(_scene3d(), grid_res=16)
    close_after(sim)
    img = r.render(sim, sim.reset())
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    bg = _background(r, Camera.framing(sim.scene.bounds, aspect=W / H))
    changed = np.any(img != bg, axis=-1)
    assert 0.02 < changed.mean() < 0.9            # something is drawn, not everything
    # both bodies are drawn in their palette colours: blue-ish water, orange-ish jelly
    blue = (img[..., 2].astype(int) - img[..., 0] > 40) & changed
    orange = (img[..., 0].astype(int) - img[..., 2] > 40) & changed
    assert blue.sum() > 20 and orange.sum() > 5


def test_depth_test_nearer_particle_wins(flat):
    red, green = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    near, far = (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)   # the camera is at z = 5
    for pts, cols in [([near, far], [red, green]), ([far, near], [green, red])]:
        img = flat.render_points(np.array(pts), colors=np.array(cols), radius=0.3, camera=CAM)
        assert _is_rgb(img[H // 2, W // 2], red)
    # the far sphere is bigger: its rim shows around the near one
    img = flat.render_points(np.array([near, far]), colors=np.array([red, green]),
                             radius=np.array([0.2, 0.6]), camera=CAM)
    assert _is_rgb(img, red).sum() > 0 and _is_rgb(img, green).sum() > 0


def test_points_beyond_far_are_drawn_behind(flat):
    cam = Camera(eye=(0, 0, 5), target=(0, 0, 0), fov=90.0, far=5.5)
    red, green = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -3.0]])  # depths 4 (in range) and 8 (beyond)
    img = flat.render_points(pts, colors=np.array([red, green]), radius=np.array([0.3, 2.0]),
                             camera=cam)
    assert _is_rgb(img[H // 2, W // 2], red)
    assert _is_rgb(img, green).sum() > 20


def test_known_camera_projects_point_to_expected_pixel(flat):
    point = np.array([[1.0, 0.5, 0.0]])
    # f = (H / 2) / tan(45 deg) = 24 px; depth 5: col = 32 + 24 * 1 / 5, row = 24 - 24 * 0.5 / 5
    pix, depth = CAM.project(point, W, H)
    np.testing.assert_allclose(pix, [[36.8, 21.6]], atol=1e-12)
    np.testing.assert_allclose(depth, [5.0])
    img = flat.render_points(point, colors=(1.0, 0.0, 0.0), radius=1e-4, camera=CAM)
    rows, cols = np.nonzero(_is_rgb(img, (1.0, 0.0, 0.0)))
    assert (rows.tolist(), cols.tolist()) == ([21], [36])
    # orthographic: 48 px over ortho_height = 4 m -> 12 px/m
    ortho = Camera(eye=(0, 0, 5), target=(0, 0, 0), projection="orthographic", ortho_height=4.0)
    pix, _ = ortho.project(np.array([[-1.0, -1.0, 2.0]]), W, H)
    np.testing.assert_allclose(pix, [[32 - 12.0, 24 + 12.0]])
    img = flat.render_points(np.array([[-1.0, -1.0, 2.0]]), colors=(1.0, 0.0, 0.0), radius=0.1,
                             camera=ortho)
    rows, cols = np.nonzero(_is_rgb(img, (1.0, 0.0, 0.0)))
    assert rows.mean() == pytest.approx(36.0, abs=0.5) and cols.mean() == pytest.approx(
        20.0, abs=0.5)


def test_matches_brute_force_reference(flat):
    """Every pixel shows the colour of the nearest sphere surface over its centre."""
    rng = np.random.default_rng(3)
    n = 150
    pts = rng.uniform((-4.0, -3.0, -1.0), (4.0, 3.0, 1.0), (n, 3))
    rad = rng.uniform(0.2, 0.8, n)
    cols = rng.uniform(0.0, 1.0, (n, 3))
    img = flat.render_points(pts, colors=cols, radius=rad, camera=CAM)
    pix, z = CAM.project(pts, W, H)
    rp = np.maximum(rad * CAM.pixel_scale(H) / z, flat.min_pixel_radius)
    jj, ii = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    d2 = ((jj[..., None] - pix[:, 0]) ** 2 + (ii[..., None] - pix[:, 1]) ** 2) / rp**2
    depth = np.where(d2 <= 1, z - rad * np.sqrt(np.clip(1 - d2, 0, None)), np.inf)
    hit = np.isfinite(depth).any(-1)
    want = cols[depth.argmin(-1)]
    ok = np.all(np.abs(img.astype(int) - np.round(want * 255)) <= 1, axis=-1)
    assert hit.mean() > 0.25
    assert ok[hit].mean() > 0.99  # ties and pixels exactly on a rim may differ


def test_sphere_is_lit_from_the_light_side(r):
    img = r.render_points(np.zeros((1, 3)), colors=(1.0, 1.0, 1.0), radius=2.5, camera=CAM)
    # the default light comes from the upper left of the camera
    upper_left, lower_right = img[24 - 6, 32 - 6].sum(), img[24 + 6, 32 + 6].sum()
    assert upper_left > lower_right + 100


def test_mesh_occludes_particle_behind_it(flat):
    box = trimesh.creation.box(extents=(3.0, 3.0, 0.1))
    behind = np.array([[0.0, 0.0, -1.0]])
    red, grey = (1.0, 0.0, 0.0), (0.5, 0.5, 0.5)
    img = flat.render_points(behind, colors=red, radius=0.3, meshes=[(box, grey)], camera=CAM)
    assert _is_rgb(img[H // 2, W // 2], grey)
    moved = np.eye(4)
    moved[2, 3] = -2.0  # now the box is behind the particle
    img = flat.render_points(behind, colors=red, radius=0.3, meshes=[(box, grey, moved)],
                             camera=CAM)
    assert _is_rgb(img[H // 2, W // 2], red)
    assert _is_rgb(img, grey).sum() > 50  # the box still shows around it


def test_tool_mesh_appears_where_the_tool_is(flat, close_after):
    sim = ds.MPM(_scene3d(), grid_res=16)
    close_after(sim)
    state = sim.reset()
    cam = Camera(eye=(0.5, 0.5, 3.0), target=(0.5, 0.5, 0.5), fov=30.0)
    tool_rgb = np.asarray(flat.tool_color)
    for pos in [(0.8, 0.3, 0.5), (0.2, 0.75, 0.6)]:
        moved = state.replace(tool_pos=torch.tensor([pos], dtype=state.tool_pos.dtype))
        img = flat.render(sim, moved, camera=cam)
        col, row = cam.project(np.array([pos]), W, H)[0][0]
        assert _is_rgb(img[int(row), int(col)], tool_rgb)
        rows, cols = np.nonzero(_is_rgb(img, tool_rgb))
        assert abs(rows.mean() - row) < 1.5 and abs(cols.mean() - col) < 1.5


def test_rotated_box_tool_follows_its_quaternion(flat, close_after):
    scene = ds.Scene(dim=3)
    scene.add_particles(ds.Box(lo=(0.25, 0.25, 0.25), hi=(0.3, 0.3, 0.3)), ds.Fluid())
    scene.add_tool(ds.Box(lo=(0.3, 0.45, 0.45), hi=(0.7, 0.55, 0.55)), name="bar")
    sim = ds.MPM(scene, grid_res=16)
    close_after(sim)
    state = sim.reset()
    cam = Camera(eye=(0.5, 0.5, 3.0), target=(0.5, 0.5, 0.5), fov=30.0)
    tool = np.asarray(flat.tool_color)
    flat_img = _is_rgb(flat.render(sim, state, camera=cam), tool)
    rows, cols = np.nonzero(flat_img)
    assert np.ptp(cols) > 2 * np.ptp(rows)          # a horizontal bar
    s = np.sqrt(0.5)
    turned = state.replace(tool_rot=torch.tensor([[s, 0.0, 0.0, s]], dtype=state.tool_rot.dtype))
    rows, cols = np.nonzero(_is_rgb(flat.render(sim, turned, camera=cam), tool))
    assert np.ptp(rows) > 2 * np.ptp(cols)          # 90 deg about z: vertical


@pytest.mark.parametrize("dim", [2, 3])
def test_compound_tool_draws_every_part(flat, close_after, dim):
    z = (0.5,) * (dim - 2)
    scene = ds.Scene(dim=dim)
    scene.add_particles(ds.Box(lo=(0.45, 0.2) + z, hi=(0.55, 0.25) + tuple(
        v + 0.05 for v in z)), ds.Fluid())
    left, right = (0.3, 0.6) + z, (0.7, 0.6) + z
    scene.add_tool(ds.Compound(parts=(ds.Sphere(center=left, radius=0.06),
                                      ds.Sphere(center=right, radius=0.06))), name="dumbbell")
    sim = ds.MPM(scene, grid_res=16)
    close_after(sim)
    cam = Camera.framing(sim.scene.bounds, aspect=W / H) if dim == 2 else Camera(
        eye=(0.5, 0.5, 3.0), target=(0.5, 0.5, 0.5), fov=30.0)
    img = flat.render(sim, sim.reset(), camera=cam)
    (lc, lr), (rc, rr), (mc, mr) = cam.project(np.array([left, right, (0.5, 0.6) + z]), W, H)[0]
    tool = np.asarray(flat.tool_color)
    assert _is_rgb(img[int(lr), int(lc)], tool) and _is_rgb(img[int(rr), int(rc)], tool)
    assert not _is_rgb(img[int(mr), int(mc)], tool)


def test_2d_scene_renders_bodies_tools_and_colliders(flat, close_after):
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.2, 0.1), hi=(0.45, 0.35)), ds.Fluid(), name="water")
    scene.add_tool(ds.Box(lo=(0.6, 0.6), hi=(0.8, 0.7)), name="pusher")
    scene.add_collider(ds.Polygon([(0.6, 0.1), (0.9, 0.1), (0.75, 0.3)]), name="wedge")
    sim = ds.MPM(scene, grid_res=32)
    close_after(sim)
    img = flat.render(sim, sim.reset())
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    cam = Camera.framing(sim.scene.bounds, aspect=W / H)
    assert cam.is_orthographic
    (water, tool, wedge), _ = cam.project(np.array([[0.325, 0.225], [0.7, 0.65], [0.75, 0.17]]),
                                          W, H)
    at = lambda p: img[int(p[1]), int(p[0])]  # noqa: E731
    assert _is_rgb(at(water), np.asarray(flat.palette[0]))
    assert _is_rgb(at(tool), np.asarray(flat.tool_color))
    assert _is_rgb(at(wedge), np.asarray(flat.collider_color))


def test_collider_mesh_renders(flat, close_after):
    scene = _scene3d(tool=False)
    scene.add_collider(ds.Cylinder(center=(0.2, 0.3, 0.5), radius=0.1, height=0.3), name="post")
    sim = ds.MPM(scene, grid_res=16)
    close_after(sim)
    cam = Camera(eye=(0.5, 0.5, 3.0), target=(0.5, 0.5, 0.5), fov=30.0)
    img = flat.render(sim, sim.reset(), camera=cam)
    mask = _is_rgb(img, np.asarray(flat.collider_color))
    col, row = cam.project(np.array([[0.2, 0.3, 0.5]]), W, H)[0][0]
    assert mask[int(row), int(col)]
    assert mask.sum() > 20


def test_mesh_shapes_become_their_trimesh():
    from diffsim.render.meshes import shape_mesh

    post = trimesh.creation.cylinder(radius=0.1, height=0.3)
    post.apply_translation((0.2, 0.3, 0.5))
    tm = shape_mesh(ds.Mesh.from_trimesh(post))
    np.testing.assert_allclose(tm.vertices.min(0), post.bounds[0])
    np.testing.assert_allclose(tm.vertices.max(0), post.bounds[1])
    np.testing.assert_allclose(np.linalg.norm(tm.normals, axis=1), 1.0)
    # a non-convex 2D polygon is triangulated into its area
    L = ds.Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])
    flat2d = shape_mesh(L)
    v = flat2d.vertices[flat2d.faces][..., :2]
    e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
    assert area == pytest.approx(3.0)


def test_floor_is_checkered(r):
    cam = Camera(eye=(0.0, 2.0, 4.0), target=(0.0, 0.0, 0.0), fov=60.0)
    floor = Floor(level=0.0, lo=(-2.0, -2.0), hi=(2.0, 2.0), cell=0.5)
    img = r.render_points(np.zeros((0, 3)), camera=cam, floor=floor)
    c1, c2 = (_is_rgb(img, ds.render.renderer._rgb("c", c)) for c in floor.colors)
    assert c1.sum() > 100 and c2.sum() > 100
    assert not (c1 | c2)[:5].any()  # the top rows show the sky


def test_renderers_of_other_sizes_coexist(r):
    pts = np.array([[0.0, 0.0, 0.0]])
    with Renderer(20, 10, floor=False) as small:
        img = small.render_points(pts, radius=1.0, camera=CAM)
        assert img.shape == (10, 20, 3)
        assert r.render_points(pts, radius=1.0, camera=CAM).shape == (H, W, 3)
        # the same camera: the sphere sits at the centre of both images
        mask = np.any(img != small.render_points(np.zeros((0, 3)), camera=CAM), -1)
        rows, cols = np.nonzero(mask)
        assert rows.mean() == pytest.approx(4.5, abs=0.3)
        assert cols.mean() == pytest.approx(9.5, abs=0.3)


def test_closed_renderer_refuses_and_unregisters():
    from diffsim import runtime

    before = runtime.live_count()
    rr = Renderer(8, 8)
    assert runtime.live_count() == before + 1
    rr.close()
    rr.close()  # idempotent
    assert runtime.live_count() == before
    with pytest.raises(RuntimeError, match="closed"):
        rr.render_points(np.zeros((1, 3)))


# ---------------------------------------------------------------------- notebooks, files
def test_animate_html_and_gif(tmp_path):
    frames = [np.full((12, 16, 3), 20 * k, np.uint8) for k in range(4)]
    gif = ds.render.animate(frames, fps=10, format="gif")
    assert bytes(gif)[:6] in (b"GIF87a", b"GIF89a") and gif.n_frames == 4
    assert "data:image/gif;base64," in gif._repr_html_()
    html = ds.render.animate(frames, fps=10, format="html")
    assert isinstance(html.data, str) and "<script" in html.data
    assert html._repr_html_() == html.data
    out = html.save(tmp_path / "a.html")
    assert out.read_text().startswith(html.data[:50])
    from PIL import Image

    with Image.open(gif.save(tmp_path / "a.gif")) as im:
        assert im.n_frames == 4 and im.size == (16, 12)


def test_export_state_point_cloud_and_scene(tmp_path, close_after):
    sim = ds.MPM(_scene3d(), grid_res=16)
    close_after(sim)
    state = sim.reset()
    path = ds.render.export_state(sim, state, tmp_path / "state.ply")
    cloud = trimesh.load(path)
    assert isinstance(cloud, trimesh.PointCloud)
    assert len(cloud.vertices) == sim.n_particles
    np.testing.assert_allclose(cloud.vertices, state.x.numpy(), atol=1e-6)
    path = ds.render.export_state(sim, state, tmp_path / "state.glb", tools=True)
    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.Scene)
    kinds = {type(g).__name__: g for g in loaded.geometry.values()}
    assert len(kinds["PointCloud"].vertices) == sim.n_particles
    assert "Trimesh" in kinds
    with pytest.raises(ValueError, match="path=.*scene format"):
        ds.render.export_state(sim, state, tmp_path / "state.ply", tools=True)


def test_export_2d_state(tmp_path, close_after):
    scene = ds.Scene(dim=2)
    scene.add_particles(ds.Box(lo=(0.2, 0.2), hi=(0.4, 0.4)), ds.Fluid())
    sim = ds.MPM(scene, grid_res=16)
    close_after(sim)
    cloud = trimesh.load(ds.render.export_state(sim, sim.reset(), tmp_path / "s.ply"))
    assert cloud.vertices.shape == (sim.n_particles, 3)
    assert np.all(cloud.vertices[:, 2] == 0)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, match", [
    (lambda: Renderer(width=0), "width=0"),
    (lambda: Renderer(width=64, height=-3), "height=-3"),
    (lambda: Renderer(width=2.5), "width=2.5"),
    (lambda: Renderer(camera="top"), "camera='top'"),
    (lambda: Renderer(ambient=2.0), "ambient=2.0"),
    (lambda: Renderer(floor="yes"), "floor='yes'"),
    (lambda: Camera(eye=(0.0, 1.0), target=(0.0, 0.0)), r"eye=\(0.0, 1.0\) .*3 finite numbers"),
    (lambda: Camera(eye=(0, 0, 1), target=(0, 0, 1)), "target=.*must differ from eye"),
    (lambda: Camera(eye=(0, 1, 0), target=(0, 0, 0)), "up=.*parallel"),
    (lambda: Camera(fov=180), "fov=180"),
    (lambda: Camera(projection="fisheye"), "projection='fisheye'"),
    (lambda: Camera.framing([(0, 1)]), "bounds="),
    (lambda: Floor(cell=0.0), "cell=0.0"),
    (lambda: ds.render.animate([np.zeros((4, 4, 3), np.uint8)], format="mp5"), "format='mp5'"),
    (lambda: ds.render.animate([np.zeros((4, 4, 3), np.uint8)], fps=0), "fps=0"),
    (lambda: ds.render.animate([]), "frames is empty"),
    (lambda: ds.render.animate([np.zeros((4, 4, 3))]), r"frames\[0\] .*uint8"),
])
def test_bad_input_raises_value_error_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_render_arguments(r, close_after):
    with pytest.raises(ValueError, match=r"points has shape \(5, 4\)"):
        r.render_points(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"colors has shape \(2, 3\)"):
        r.render_points(np.zeros((5, 3)), colors=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="radius"):
        r.render_points(np.zeros((5, 3)), radius=-1.0)
    with pytest.raises(ValueError, match=r"meshes\[0\]"):
        r.render_points(np.zeros((1, 3)), meshes=["box"])
    sim = ds.MPM(_scene3d(), grid_res=16)
    close_after(sim)
    state = sim.reset()
    with pytest.raises(ValueError, match="unknown name"):
        r.render(sim, state, colors={"lava": "red"})
    with pytest.raises(ValueError, match=r"colors\['water'\]='blurple' is not a colour"):
        r.render(sim, state, colors={"water": "blurple"})
    bad = ds.State(x=torch.zeros(3, 3), tool_pos=state.tool_pos, tool_rot=state.tool_rot)
    with pytest.raises(ValueError, match=r"state.x has shape \(3, 3\)"):
        r.render(sim, bad)


def test_benchmark_runs_in_float32_and_agrees_with_its_numpy_peer(tmp_path):
    """benchmarks/render.py at a tiny size, in a subprocess: the f32 path of the kernels,
    particles and triangle meshes, each against its numpy peer."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "render.py"
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(script), "--particles", "3000", "--size", "64",
                          "--reps", "2", "--sheet-res", "16", "--block-res", "8",
                          "--precision", "f32", "--arch", "cpu", "--json", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["precision"] == "f32" and res["particles"] > 2000
    assert res["pixels_agreeing"] > 0.99
    # the triangle meshes (a shell sheet, an FEM block) against the numpy rasterizer
    for name in ("shell", "fem"):
        assert res["meshes"][name]["faces"] > 100
        assert res["meshes"][name]["pixels_agreeing"] > 0.99, name


@pytest.mark.slow
def test_readme_code_runs(tmp_path):
    """The code blocks of diffsim/render/README.md run as written (in a subprocess)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = Path(ds.render.__file__).with_name("README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", readme, re.S))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for name in ("rollout.html", "rollout.gif", "particles.ply", "scene.glb", "paper.gif"):
        assert (tmp_path / name).stat().st_size > 0, name
