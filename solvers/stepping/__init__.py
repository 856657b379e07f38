"""The integration loop that the ODE and SDE front-ends (and the continuous adjoints'
backward solves) run on, and what it needs and records: step options and their checks,
the step-size controller, the right-hand side wrapper, saved trajectories, dense output,
the solve's job and the forward pass that every sensitivity algorithm calls. Internal:
the public names are re-exported by ``diffsim.solvers``."""
