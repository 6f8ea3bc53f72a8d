"""Records, in the installed package, the checkout it was installed from, so that `import hcrt` can fall
back to that checkout's build tree (build/libhcrt.so) when no installed libhcrt is found. Everything else
is in pyproject.toml."""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class BuildPy(build_py):
    def run(self):
        super().run()
        root = ROOT if os.path.exists(os.path.join(ROOT, "meson.build")) else ""
        path = os.path.join(self.build_lib, "hcrt", "_install_info.py")
        with open(path, "w") as f:
            f.write('"""Written by pip install (python/setup.py): the checkout this copy came from."""\n')
            f.write(f"SOURCE_ROOT = {root!r}\n")


setup(cmdclass={"build_py": BuildPy})
