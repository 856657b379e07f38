"""HDF5 data generation: round trip, attributes, resumption, mismatched and corrupted files."""

import json

import h5py
import numpy as np
import pytest
import torch

from diffsim import solvers as dss
from diffsim.solvers.pde import CEData, CEFamily, downsample, generate, load_ce

TINY = CEFamily("tiny", alpha=0.5, beta=(0.0, 0.2), tmax=0.4, nt=11)


def spec(**kw):
    return CEData(TINY, resolutions=(40, 20), rtol=1e-5, atol=1e-7, **kw)


def test_round_trip_keeps_data_parameters_and_settings(tmp_path):
    path = generate(spec(), tmp_path / "d.h5", 5, seed=3, chunk=2, progress=False)
    with h5py.File(path) as f:
        assert f.attrs["kind"] == "CombinedEquation" and f.attrs["complete"]
        st = json.loads(f.attrs["settings"])
        assert st["rtol"] == 1e-5 and st["resolutions"] == [40, 20] and st["family"]["beta"] == [0.0, 0.2]
        assert f.attrs["setting.solver"] == "Tsit5" and f.attrs["seed"] == 3
        assert f["u_40"].shape == (5, 11, 40) and f["done"][:].all()
        beta = f["beta"][:]
    d = load_ce(path, 20)
    assert d.u.shape == (5, 11, 1, 20) and d.baseline.shape == (5, 11, 1, 20)
    assert d.cond_names == ("beta",) and torch.allclose(d.cond[:, 0].double(), torch.as_tensor(beta) / 0.2)
    # the stored trajectories are the family's solutions of the stored parameters
    p = TINY.sample_index(3, 4)
    u, _ = TINY.solve({k: v[None] for k, v in p.items()}, 40, rtol=1e-5, atol=1e-7)
    with h5py.File(path) as f:
        assert np.allclose(f["u_40"][4], u[0].numpy(), atol=1e-5)
    assert d.u.dtype == torch.float32 and d.t[-1] == pytest.approx(0.4)


def test_resumption_continues_where_it_stopped(tmp_path, monkeypatch):
    full = generate(spec(), tmp_path / "full.h5", 6, chunk=2, progress=False)
    calls = {"n": 0}
    original = CEData.simulate

    def flaky(self, indices, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the run is killed during its second chunk
        return original(self, indices, seed)

    monkeypatch.setattr(CEData, "simulate", flaky)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(spec(), part, 6, chunk=2, progress=False)
    with h5py.File(part) as f:
        assert f["done"][:].tolist() == [True, True, False, False, False, False]
    with pytest.raises(ValueError, match="incomplete: 2 of 6"):
        load_ce(part, 20)
    seen = []
    monkeypatch.setattr(CEData, "simulate", lambda self, idx, seed: seen.append(list(idx)) or original(self, idx, seed))
    generate(spec(), part, 6, chunk=2, progress=False)
    assert seen == [[2, 3], [4, 5]]  # only the missing chunks were simulated
    with h5py.File(full) as a, h5py.File(part) as b:
        for name in ("u_40", "u_20", "beta", "A", "l"):
            assert np.array_equal(a[name][:], b[name][:]), name


def test_a_file_with_other_settings_is_not_resumed(tmp_path):
    path = generate(spec(), tmp_path / "d.h5", 2, progress=False)
    with pytest.raises(ValueError, match="settings differ in rtol"):
        generate(CEData(TINY, resolutions=(40, 20), rtol=1e-3, atol=1e-7), path, 2, progress=False)
    with pytest.raises(ValueError, match="n_samples 2 != 3"):
        generate(spec(), path, 3, progress=False)
    generate(spec(), path, 3, progress=False, overwrite=True)
    assert load_ce(path, 20).n == 3


def test_corrupted_and_foreign_files_give_clear_errors(tmp_path):
    path = generate(spec(), tmp_path / "d.h5", 2, progress=False)
    raw = path.read_bytes()
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ValueError, match="not a readable HDF5 file|corrupted"):
        load_ce(trunc, 20)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_ce(garbage, 20)
    with pytest.raises(FileNotFoundError, match="generate"):
        load_ce(tmp_path / "missing.h5", 20)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a diffsim.pde data file"):
        load_ce(tmp_path / "other.h5", 20)
    with pytest.raises(ValueError, match="does not divide|allowed nx"):
        load_ce(path, 30)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(raw)
    with h5py.File(broken, "a") as f:
        del f["u_40"]
    with pytest.raises(ValueError, match="dataset 'u_40' is missing"):
        load_ce(broken, 20)
    with h5py.File(broken, "a") as f:
        f["u_40"] = np.full((2, 11, 40), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        load_ce(broken, 20)
    with h5py.File(broken, "a") as f:
        f.attrs["kind"] = "SmokeBuoyancy"
    with pytest.raises(ValueError, match="holds 'SmokeBuoyancy' data"):
        load_ce(broken, 20)


def test_bad_generate_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        generate("E1", "/nonexistent/x.h5", 0)
    with pytest.raises(ValueError, match="workers"):
        generate("E1", "/nonexistent/x.h5", 1, workers=0)
    with pytest.raises(TypeError, match="DataSpec"):
        generate(object(), "/nonexistent/x.h5", 1)
    with pytest.raises(ValueError, match="resolutions"):
        CEData("E1", resolutions=(4,))


def test_downsampling_paper_filter_and_exact_average():
    fine = torch.arange(20.0)
    assert torch.allclose(downsample(fine, 5, "paper"), downsample(fine, 5, "average"))
    periodic = torch.sin(torch.arange(200) * 2 * torch.pi / 200)
    # the exact average of cell averages conserves the integral for every factor
    for r in (2, 4, 5):
        for m in ("paper", "average"):
            assert downsample(periodic, r, m).sum() * r == pytest.approx(float(periodic.sum()), abs=1e-4)
    # the paper's 5-point filter is wider than a cell for factor 2
    assert not torch.allclose(downsample(periodic, 2, "paper"), downsample(periodic, 2, "average"))
    with pytest.raises(ValueError, match="multiple"):
        downsample(fine, 3)


@pytest.mark.slow
def test_parallel_workers_give_the_same_data(tmp_path):
    a = generate(spec(), tmp_path / "a.h5", 4, chunk=2, progress=False, workers=1)
    b = generate(spec(), tmp_path / "b.h5", 4, chunk=2, progress=False, workers=2)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert np.array_equal(fa["u_40"][:], fb["u_40"][:])


def test_public_surface():
    assert dss.pde.generate is generate and dss.pde.E1.name == "E1"
    assert "MPPDE" in dss.nn.MODELS and "FNO" in dss.nn.MODELS


def test_resumption_keeps_the_files_chunking(tmp_path):
    path = generate(spec(), tmp_path / "d.h5", 3, chunk=1, progress=False)
    with h5py.File(path, "a") as f:
        f["done"][2] = False  # as if killed before the last chunk
    generate(spec(), path, 3, progress=False)  # default chunk: the file's own, not the spec's
    assert load_ce(path, 20).n == 3
    with pytest.raises(ValueError, match="chunk 1 != 2"):
        generate(spec(), path, 3, chunk=2, progress=False)
