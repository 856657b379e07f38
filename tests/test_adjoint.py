"""``adjoint.stepwise_rollout``: the segment checkpointing of rollouts that go one control
step at a time through torch (``ds.Tactile`` with free bodies or a coupled MPM/FEM object),
on a torch step function: same states and bitwise the same gradients for every segment
length, and autograd keeps no tensor of a checkpointed step (the slow tactile test checks
the same on a coupled MPM object)."""

import pytest
import torch

from diffsim.adjoint import save_steps, stepwise_rollout

F64 = torch.float64


def step(t, state):
    """A nonlinear step whose graph saves tensors (tanh, products, a matrix product)."""
    x, v = state
    W = torch.linspace(-1.0, 1.0, x.numel() ** 2, dtype=F64).reshape(x.numel(), -1) / x.numel()
    a = torch.tanh(W @ x) - 0.1 * v * v.abs() + 0.01 * t
    return (x + 0.1 * v, v + 0.1 * a)


def run(segment, T=7, saveat=(0, 2, 3, 7)):
    x0 = torch.linspace(0.1, 1.0, 64, dtype=F64, requires_grad=True)
    v0 = torch.zeros(64, dtype=F64, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        states = stepwise_rollout(step, (x0, v0), T, list(saveat), segment)
    loss = sum(float(k + 1) * (s[0] ** 2).sum() + s[1].sum() for k, s in enumerate(states))
    loss.backward()
    return [tuple(t.detach() for t in s) for s in states], x0.grad, v0.grad, sum(saved)


@pytest.mark.parametrize("segment", [1, 2, 3, 6])
def test_segments_give_the_same_states_and_bitwise_the_same_gradients(segment):
    want_states, want_gx, want_gv, plain_bytes = run(7)    # segment >= T: no checkpoint
    states, gx, gv, nbytes = run(segment)
    for a, b in zip(states, want_states):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(gx, want_gx) and torch.equal(gv, want_gv)
    assert float(want_gx.abs().sum()) > 0
    # the unsegmented graph saves every step's tensors; checkpointed segments save none
    assert plain_bytes > 7 * 64 * 8 and nbytes == 0


def test_without_gradients_nothing_is_checkpointed_and_saveat_order_is_kept():
    with torch.no_grad():
        a = stepwise_rollout(step, (torch.ones(4, dtype=F64), torch.zeros(4, dtype=F64)), 5, [5, 0, 3], 2)
    b = stepwise_rollout(step, (torch.ones(4, dtype=F64), torch.zeros(4, dtype=F64)), 5, [5, 0, 3], 5)
    assert [torch.equal(p[0], q[0]) for p, q in zip(a, b)] == [True] * 3
    assert torch.equal(a[1][0], torch.ones(4, dtype=F64))   # saveat 0 is the start state


def test_saveat_defaults_to_the_last_step_and_bad_steps_are_named():
    """Every simulator's rollout checks ``saveat`` through ``save_steps``: ``[T]`` by
    default, and a step outside ``[0, T]`` or an empty list is refused before any step."""
    calls = []

    def counted(t, state):
        calls.append(t)
        return step(t, state)

    x = (torch.ones(4, dtype=F64), torch.zeros(4, dtype=F64))
    assert save_steps(None, 5) == [5] and save_steps((0, 3.0), 5) == [0, 3]
    (last,) = stepwise_rollout(counted, x, 3, None, 2)
    assert calls == [0, 1, 2] and torch.equal(last[0], stepwise_rollout(step, x, 3, [3], 1)[0][0])
    calls.clear()
    for bad in ([4], [-1], []):
        with pytest.raises(ValueError, match=r"saveat=.* steps must lie in \[0, 3\]"):
            stepwise_rollout(counted, x, 3, bad, 1)
    assert calls == []
