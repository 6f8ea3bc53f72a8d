#!/usr/bin/env python3
"""Writes docs/configuration.md from the library's config table, or checks that it is up to date.

    config-doc.py            print the document
    config-doc.py --check F  exit 1 (with a diff) when F differs from what the table gives

Runs through the Python binding (HCRT_LIBRARY or the build tree), so the document is generated from the
one table in runtime/config_table.c and can never drift from it.
"""
import difflib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import ctypes  # noqa: E402

from hcrt import _lib  # noqa: E402

HEADER = """# Configuration

Every setting of hcrt is an environment variable, listed in one table (`runtime/config_table.c`).
`hcrt_init()` parses them all and refuses a bad value with `HCRT_ERR_CONFIG`, naming the variable, the value
and what was expected; nothing falls back to a default silently. `hcrt-info` prints the values in effect.
Backend plugins receive their variables (`HCRT_SIM_*`) from the runtime; they never read the environment.

This page is generated from the table by `tools/scripts/config-doc.py`; the unit test `config_doc` fails
when they differ.

Types: `int` and `double` take decimal numbers within the variable's range (a value outside it is refused with the range in the message); `bool` takes 1/0,
true/false, yes/no, on/off; `size` takes bytes with an optional K, M, G or T suffix (powers of 1024, `KiB`
and `KB` spellings too); an enumeration takes one of the listed words.

| Variable | Default | Type | Meaning |
|---|---|---|---|
"""

FAULTS = """
## HCRT_FAULT and HCRT_ON_FAILURE

`HCRT_FAULT` injects failures for tests at every site (collectives, checkpoint phases, restore, training
steps, compute), as comma-separated rules `KIND[:key=value]...`, e.g. `kill:rank=1:step=3:phase=write` or
`error:rank=1:op=allreduce:seq=3:attempt=0`. Kinds kill, hang, slow, error, device_lost, corrupt; keys rank,
step/seq, op/phase, site, secs, attempt (matched against `HCRT_RUN_ATTEMPT`), prob and seed. Every site,
kind and key, with what each does: [fault-injection.md](fault-injection.md). `HCRT_ON_FAILURE` says whether
a detected failure ends the job with its documented exit status (the default) or is returned, and
[fault-injection.md](fault-injection.md) gives the exit statuses.

## HCRT_SIM_FAULT

Faults of the sim backend: comma-separated `alloc_fail=N` (the Nth allocation fails), `copy_fail=N` (the
Nth copy fails), `register_fail=N` (the Nth `hcrt_host_register` is refused with `HCRT_ERR_BACKEND`, as a
GPU runtime may refuse to pin memory), `lost_after=N` (the device is lost after N operations; every later operation returns
`HCRT_ERR_DEVICE_LOST` and its health says lost), and `dev=I` to aim them at one device.
"""


def render():
    lib = _lib.lib
    rows = []
    for i in range(lib.hcrt_config_count()):
        e = _lib.ConfigEntry(struct_size=ctypes.sizeof(_lib.ConfigEntry))
        if lib.hcrt_config_get_entry(None, i, ctypes.byref(e)) != 0:
            raise SystemExit("hcrt_config_get_entry failed")
        default = e.default.decode() or "(empty)"
        typ = e.type.decode().replace(",", ", ")
        helptext = e.help.decode().replace("|", "\\|")
        rows.append(f"| `{e.name.decode()}` | `{default}` | {typ} | {helptext} |")
    return HEADER + "\n".join(rows) + "\n" + FAULTS


def main(argv):
    # The entries read with ctx NULL come from the environment: start from a clean one.
    for k in list(os.environ):
        if k.startswith("HCRT_") and k != "HCRT_LIBRARY":
            del os.environ[k]
    text = render()
    if len(argv) == 3 and argv[1] == "--check":
        with open(argv[2]) as f:
            have = f.read()
        if have != text:
            sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), text.splitlines(True), argv[2],
                                                       "generated"))
            print(f"{argv[2]} is out of date: run tools/scripts/config-doc.py > {argv[2]}")
            return 1
        print(f"{argv[2]} matches the config table")
        return 0
    if len(argv) != 1:
        print(__doc__)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
