"""tests/python/test_binding.py - the ctypes binding without MPI: loading, errors, devices, backends,
config, device arrays on cpu and sim, copies through every device."""
import os
import sys

import numpy as np

import hcrt


def main():
    assert hcrt.version()[0] >= 1

    # Errors raise hcrt.Error with the status name and the message naming the variable.
    os.environ["HCRT_TIMEOUT"] = "soon"
    try:
        hcrt.Context(mpi=False)
        raise AssertionError("a bad HCRT_TIMEOUT was accepted")
    except hcrt.Error as e:
        assert e.name == "ERR_CONFIG", e.name
        assert "HCRT_TIMEOUT" in e.message and "soon" in e.message, e.message
    del os.environ["HCRT_TIMEOUT"]

    with hcrt.Context(mpi=False) as ctx:
        assert (ctx.rank, ctx.size) == (0, 1)
        names = {b["name"]: b for b in ctx.backends()}
        assert names["cpu"]["status"] == "loaded", names
        assert names["sim"]["status"] == "loaded", names
        devs = ctx.devices()
        assert any(d.backend == "sim" for d in devs) and any(d.backend == "cpu" for d in devs)
        assert ctx.host.host_addressable and ctx.host.backend == "cpu"
        sim = ctx.find_device("sim", 0)
        assert not sim.host_addressable
        cfg = ctx.config()
        assert cfg["HCRT_TIMEOUT"]["default"] == "300" and cfg["HCRT_TIMEOUT"]["help"]

        # A buffer through every device and back.
        x = np.arange(10000, dtype=np.float32) * 0.5
        arrays = [d.array(x) for d in devs]
        for a in arrays:
            assert np.array_equal(a.numpy(), x), a
        # Every numpy dtype hcrt knows round-trips through a sim device.
        for dt in ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"]:
            v = (np.arange(257) % 100).astype(dt)
            assert np.array_equal(sim.array(v).numpy(), v), dt

        # Bad input is a clear error, not a crash.
        try:
            ctx.find_device("sim", 99)
            raise AssertionError("sim:99 was found")
        except hcrt.Error as e:
            assert e.name == "ERR_NOT_FOUND" and "99" in e.message, e
        try:
            sim.array(np.zeros(3, dtype=np.complex64))
            raise AssertionError("complex64 accepted")
        except ValueError as e:
            assert "complex64" in str(e)
        a = sim.empty(16, "f32")
        try:
            a.copy_from(np.zeros(8, dtype=np.float32))
            raise AssertionError("size mismatch accepted")
        except ValueError:
            pass
        # Out of sim memory is ERR_DEVICE_OOM.
        try:
            sim.empty(1 << 40, "u8")
            raise AssertionError("1 TiB sim allocation succeeded")
        except hcrt.Error as e:
            assert e.name == "ERR_DEVICE_OOM", e
    print("python binding: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
