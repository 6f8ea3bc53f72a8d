"""Ends a test script: prints each failure, then "ok" or the count, and gives the exit status."""


def finish(failures):
    for f in failures:
        print("FAIL:", f)
    print("ok" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0
