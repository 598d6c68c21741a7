"""The binary sample codec: one row of samples per result, latencies as little-endian int64
nanoseconds, the round of each sample as little-endian int32 (or NULL), the device-clock samples
of GPU backends as int64 (or NULL). docs/store.md says why one blob per result."""
from __future__ import annotations

from ..errors import UserError

SAMPLE_ENCODING = "i8le+i4le"


def _int_samples(samples, what: str):
    import numpy as np

    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or inf")
        arr = np.rint(arr)
    elif arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers (nanoseconds), got dtype {arr.dtype}")
    return arr.astype("<i8")


def _encode_samples(samples_ns, rounds, device_samples_ns=None) -> dict | None:
    import numpy as np

    if samples_ns is None:
        if device_samples_ns is not None and len(device_samples_ns):
            raise ValueError("device samples given without host samples")
        if rounds is not None and len(rounds):
            raise ValueError("rounds given without samples")
        return None
    lat = _int_samples(samples_ns, "samples_ns")
    rnd = None
    if rounds is not None:
        r = np.asarray(rounds)
        if r.shape != lat.shape:
            raise ValueError(f"rounds has {r.size} entries for {lat.size} samples")
        if r.size and r.dtype.kind not in "iu":
            raise ValueError(f"rounds must be integers, got dtype {r.dtype}")
        rnd = r.astype("<i4").tobytes()
    dev = None
    if device_samples_ns is not None:
        dev = _int_samples(device_samples_ns, "device_samples_ns").tobytes()
    return {"n": int(lat.size), "encoding": SAMPLE_ENCODING, "latency_ns": lat.tobytes(), "rounds": rnd,
            "device_latency_ns": dev}


NO_SAMPLES = {"latency_ns": [], "round": None, "device_latency_ns": None}


def _decode_samples(rec, warn=None) -> dict:
    """The samples record of one result decoded. A damaged record (a blob whose length is not a
    whole number of values, round ids that do not match the samples one to one) is a UserError,
    or, with `warn` (a reader of many results), `warn(message)` and no samples for that result:
    one damaged cell never hides the rest of the store."""
    import numpy as np

    if rec is None:
        return dict(NO_SAMPLES)
    if rec.encoding != SAMPLE_ENCODING:
        raise UserError(f"samples of result {rec.result_id} use an unknown encoding {rec.encoding!r}; "
                        "upgrade pfdeploy")
    dev = getattr(rec, "device_latency_ns", None)
    problem = None
    for name, blob, size in (("latency_ns", rec.latency_ns, 8), ("rounds", rec.rounds, 4),
                             ("device_latency_ns", dev, 8)):
        if blob is not None and (not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) % size):
            problem = f"its {name} blob is not a whole number of {size}-byte values"
            break
    if problem is None:
        lat = np.frombuffer(rec.latency_ns or b"", dtype="<i8")
        rnd = np.frombuffer(rec.rounds, dtype="<i4") if rec.rounds is not None else None
        if rnd is not None and rnd.size != lat.size:
            problem = f"it has {rnd.size} round ids for {lat.size} samples"
    if problem is not None:
        msg = f"samples of result {rec.result_id} are damaged ({problem})"
        if warn is None:
            raise UserError(f"{msg}: the store was changed outside pfdeploy")
        warn(msg)
        return dict(NO_SAMPLES)
    dev = np.frombuffer(dev, dtype="<i8").tolist() if dev is not None else None
    return {"latency_ns": lat.tolist(), "round": rnd.tolist() if rnd is not None else None,
            "device_latency_ns": dev}
