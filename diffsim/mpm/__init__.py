"""The MLS-MPM simulator (``ds.MPM``) and its kernels."""

from .simulator import MPM

__all__ = ["MPM"]
