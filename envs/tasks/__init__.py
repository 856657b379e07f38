"""The manipulation tasks (one module per task)."""
