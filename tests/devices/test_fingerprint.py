"""The device fingerprint: fields present, host name hashed, never raw."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import socket

import numpy as np

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id, hash_hostname


def test_fields_present() -> None:
    fp = device_fingerprint({"model_name": "m", "model_version": "1", "variants": {"fp32": "ab"}})
    for key in (
        "cpu_model",
        "cpu_cores",
        "machine",
        "os",
        "python",
        "numpy",
        "onnxruntime",
        "tensorrt",
        "cuda",
        "medfuse",
        "host_id",
        "device",
        "bundle",
    ):
        assert key in fp, key
    for key in ("kind", "name", "compute_capability", "driver_version", "jetpack", "power_mode"):
        assert key in fp["device"], key
    assert fp["numpy"] == np.__version__
    assert fp["python"] == platform.python_version()
    assert fp["bundle"]["variants"] == {"fp32": "ab"}
    json.dumps(fp)  # JSON-ready


def test_hostname_is_hashed_not_raw() -> None:
    fp = device_fingerprint()
    host = socket.gethostname()
    text = json.dumps(fp)
    assert host not in text
    expected = hashlib.sha256(b"medfuse-bench-host-v1:" + host.encode()).hexdigest()[:16]
    assert fp["host_id"] == expected == hash_hostname()
    assert hash_hostname("a") != hash_hostname("b")


def test_fingerprint_id_is_file_name_safe_and_stable() -> None:
    fp = device_fingerprint()
    fid = fingerprint_id(fp)
    assert re.fullmatch(r"[A-Za-z0-9_]+-[a-z0-9]+-[0-9a-f]{8}", fid), fid
    assert fid == fingerprint_id(device_fingerprint())
    assert socket.gethostname() not in fid
