#!/usr/bin/env python3
"""Counts the results of meson test logs (testlog.json) and prints 'N passed, N failed, N skipped'.

Usage: test-summary.py TESTLOG.json... ; exits 1 when a test failed or a log is missing.
"""
import json
import sys


def main(paths):
    passed = failed = skipped = 0
    missing = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.readlines()
        except OSError:
            missing.append(path)
            continue
        for line in lines:
            line = line.strip()
            if not line:
                continue
            result = json.loads(line).get("result", "")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
    for path in missing:
        print(f"test log {path} is missing: that build or its tests did not run")
    if missing:
        failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
