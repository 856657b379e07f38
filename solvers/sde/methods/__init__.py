"""SDE methods: Euler-Maruyama, Milstein and adaptive Milstein steppers over ``AbstractSDESolver``."""
