"""Package layout of DESIGN.md: three top-level folders installed as one package.

``diffsim/`` -> ``diffsim``, ``solvers/`` -> ``diffsim.solvers``, ``envs/`` ->
``diffsim.envs`` and ``assets/`` -> ``diffsim.assets`` (data only). Subpackages are
discovered, so a new folder with an ``__init__.py`` needs no edit here. The same
mapping serves editable (``pip install -e .``) and wheel installs; tests/test_packaging.py
checks the wheel.
"""

from setuptools import find_packages, setup

ROOTS = {"diffsim": "diffsim", "diffsim.solvers": "solvers", "diffsim.envs": "envs"}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    packages.append(name)
    package_dir[name] = folder
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]
packages.append("diffsim.assets")
package_dir["diffsim.assets"] = "assets"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"diffsim.assets": ["**/*.obj", "**/*.stl", "**/*.json", "**/*.npz", "*.md"]},
    include_package_data=False,
)
