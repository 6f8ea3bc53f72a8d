#!/usr/bin/env python3
"""tests/python/test_pip_install.py MESON BUILD_DIR SOURCE_DIR - `pip install ./python` into a fresh venv,
and `import hcrt` from outside the tree finding libhcrt without help.

1. A fresh venv (with the system site-packages, for numpy, setuptools and wheel: nothing is downloaded)
   gets `pip install --no-index --no-build-isolation SOURCE/python`.
2. From /, without PYTHONPATH, HCRT_LIBRARY, LD_LIBRARY_PATH or HCRT_BACKEND_PATH, `import hcrt` loads the
   checkout's build tree (recorded at install) - or the installed prefix when pkg-config knows one - and
   the library finds its sim plugin.
3. After `meson install` into a staging prefix, with PKG_CONFIG_PATH naming it, the same import loads the
   installed library and plugins (the installed prefix comes before the build tree).
4. With HCRT_LIBRARY set, that file wins; a wrong HCRT_LIBRARY fails the import, naming it (never a
   silent substitute).
"""
import os
import shutil
import subprocess
import sys
import tempfile

from report import finish

PROBE = r"""
import json, hcrt
with hcrt.Context(mpi=False) as ctx:
    sim = [b for b in ctx.backends() if b["name"] == "sim"]
    print(json.dumps({"file": hcrt.__file__, "library": hcrt.library_path(),
                      "sim": sim[0]["path"] if sim and sim[0]["status"] == "loaded" else None,
                      "version": hcrt.version(), "pkg_version": hcrt.__version__}))
"""


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HCRT_LIBRARY", "LD_LIBRARY_PATH", "HCRT_BACKEND_PATH", "PKG_CONFIG_PATH")}
    env.update(extra)
    return env


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    print(f"$ {' '.join(cmd)}\n-> {p.returncode}\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p


def probe(python, env):
    import json
    p = run([python, "-c", PROBE], cwd="/", env=env)
    return json.loads(p.stdout.splitlines()[-1]) if p.returncode == 0 else None


def main():
    meson, build, source = sys.argv[1:4]
    build = os.path.realpath(build)
    failures = []
    t = tempfile.mkdtemp(prefix="hcrt-pip-")
    try:
        venv = os.path.join(t, "venv")
        if run([sys.executable, "-m", "venv", "--system-site-packages", venv]).returncode != 0:
            print("FAIL: cannot create a venv")
            return 1
        py = os.path.join(venv, "bin", "python")
        p = run([py, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                 os.path.join(source, "python")], env=clean_env())
        if p.returncode != 0:
            print("FAIL: pip install ./python")
            return 1

        # 2. the build tree of the checkout (unless pkg-config already knows an installed hcrt here)
        pc = run(["pkg-config", "--variable=libdir", "hcrt"], env=clean_env())
        r = probe(py, clean_env())
        expect_dir = os.path.realpath(pc.stdout.strip()) if pc.returncode == 0 else build
        if r is None:
            failures.append("import hcrt from / in the venv failed")
        else:
            if not r["file"].startswith(venv):
                failures.append(f"hcrt imported from {r['file']}, not from the venv")
            if not r["library"].startswith(expect_dir):
                failures.append(f"libhcrt loaded from {r['library']}, expected under {expect_dir}")
            if r["sim"] is None:
                failures.append("the sim plugin was not found without HCRT_BACKEND_PATH")
            if ".".join(map(str, r["version"])) != r["pkg_version"]:
                failures.append(f"package version {r['pkg_version']} differs from the library's {r['version']}")

        # 3. an installed prefix, named by PKG_CONFIG_PATH
        root = os.path.join(t, "root")
        if run([meson, "install", "-C", build, "--destdir", root, "--no-rebuild", "--quiet"]).returncode != 0:
            failures.append("meson install --destdir failed")
        else:
            pcdir = next(os.path.dirname(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
                         if f == "hcrt.pc")
            r = probe(py, clean_env(PKG_CONFIG_PATH=pcdir))
            if r is None or not r["library"].startswith(root) or not (r["sim"] or "").startswith(root):
                failures.append(f"with PKG_CONFIG_PATH={pcdir}: loaded {r}, expected the library and the sim "
                                f"plugin under {root}")

        # 4. HCRT_LIBRARY wins; a wrong one is named
        lib = os.path.join(build, "libhcrt.so")
        r = probe(py, clean_env(HCRT_LIBRARY=build))
        if r is None or r["library"] != os.path.realpath(lib):
            failures.append(f"HCRT_LIBRARY={build} (a directory) loaded {r and r['library']}")
        p = run([py, "-c", "import hcrt"], cwd="/", env=clean_env(HCRT_LIBRARY="/nonexistent/libhcrt.so.1"))
        if p.returncode == 0 or "HCRT_LIBRARY: /nonexistent/libhcrt.so.1 does not exist" not in p.stderr:
            failures.append("a wrong HCRT_LIBRARY did not fail the import naming it")
    finally:
        shutil.rmtree(t, ignore_errors=True)
    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
