"""The README written into an exported Triton model repository."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medfuse.bundle import ModelSpec

if TYPE_CHECKING:
    from medfuse.serving.triton_repo import TritonRepository

__all__ = ["repository_readme"]


def repository_readme(repo: TritonRepository, spec: ModelSpec) -> str:
    """Markdown: the models, the ``tritonserver`` command, and a client example."""
    ins = "\n".join(
        f"| `{i.name}` | {i.dtype} | {list(i.sample_shape())} | {i.role} |" for i in spec.inputs
    )
    outs = "\n".join(
        f"| `{o.name}` | {o.meaning or o.kind} | {list(o.shape[1:])} | {o.activation} |"
        for o in spec.outputs
    )
    plans = (
        "\n".join(
            f"- compute capability {cc}: `{repo.model}/1/{f}`"
            for cc, f in sorted(repo.plans.items())
        )
        or "- (none: ONNX Runtime backend)"
    )
    if repo.execution_env is not None:
        env_section = (
            f"`{repo.preprocess}` imports medfuse. Its `EXECUTION_ENV_PATH` is\n"
            f"`{repo.execution_env}`: a Python environment holding medfuse (a `conda-pack`\n"
            "archive, or a folder with `bin/activate`) whose Python is the version of the\n"
            "server's Python-backend stub; Triton activates it for this model only."
        )
        image = (
            "`nvcr.io/nvidia/tritonserver:<yy.mm>-py3` as it is (medfuse comes from the\n"
            "execution environment; mount it where `EXECUTION_ENV_PATH` points)."
        )
    else:
        env_section = (
            f"`{repo.preprocess}` imports medfuse: install it into the Python that Triton's\n"
            "Python-backend stub runs (`python3 -m pip install medfuse-<version>-*.whl`; build\n"
            "the wheel with `pip wheel --no-deps -w dist .` in medfuse's source tree), or\n"
            "export with an execution environment (`TritonExportOptions(execution_env=...)`: a\n"
            "`conda-pack` archive of a Python with medfuse, of the stub's Python version)."
        )
        image = (
            "`nvcr.io/nvidia/tritonserver:<yy.mm>-py3` extended with medfuse, e.g. a Dockerfile\n"
            "`FROM nvcr.io/nvidia/tritonserver:<yy.mm>-py3`, `COPY dist/*.whl /tmp/`,\n"
            "`RUN python3 -m pip install /tmp/medfuse-*.whl` (the image's own Python 3 is the one\n"
            "its Python-backend stub runs)."
        )
    return f"""# Triton model repository for {spec.name} {spec.version}

Written by `medfuse export-triton` (backend **{repo.backend}**, variant **{repo.variant}**,
max batch {repo.max_batch}, dynamic batching on).

| model | what it does |
|---|---|
| `{repo.model}` | the network ({repo.backend}) |
| `{repo.preprocess}` | Python backend: a study's DICOM bytes → the network's input tensors (medfuse preprocessing) |
| `{repo.ensemble}` | ensemble: `study` (BYTES) → `{repo.preprocess}` → `{repo.model}` → outputs |

Inputs of `{repo.model}` (batch axis not shown):

| name | dtype | dims | role |
|---|---|---|---|
{ins}

Outputs (raw values; apply the activation for probabilities):

| name | meaning | dims | activation |
|---|---|---|---|
{outs}

TensorRT plans (Triton picks one per GPU through `cc_model_filenames`; a plan only loads with
the TensorRT version it was built with — the server's):
{plans}

## Start the server

{env_section}

Then, on loopback:

```
tritonserver --model-repository "$PWD" --http-address 127.0.0.1 --grpc-address 127.0.0.1 \\
    --metrics-address 127.0.0.1 --http-port 8000 --grpc-port 8001 --metrics-port 8002
curl -sf 127.0.0.1:8000/v2/health/ready && echo ready
```

In NVIDIA's container (the Python backend talks to its stub through shared memory: give the
container more than Docker's default 64 MB):

```
docker run --rm --gpus all --shm-size 1g -p 127.0.0.1:8000:8000 -p 127.0.0.1:8001:8001 \\
    -v "$PWD":/models IMAGE tritonserver --model-repository /models
```

`IMAGE` is {image}

## Send a study

A study is one BYTES element: the medfuse framing (`encode_study`), an uncompressed tar of the
study's files (`tar -cf study.tar STUDY_DIR`), or a single DICOM file.

```python
import numpy as np
import tritonclient.http as http
from medfuse.serving.study import encode_study_folder

client = http.InferenceServerClient("127.0.0.1:8000")
study = np.array([[encode_study_folder("path/to/one/study")]], dtype=object)
inp = http.InferInput("study", [1, 1], "BYTES")
inp.set_data_from_numpy(study)
result = client.infer("{repo.ensemble}", [inp])
print({{name: result.as_numpy(name) for name in {[o.name for o in spec.outputs]!r}}})
```

A study that cannot be read gets an error response with a PHI-free message; the server goes on.
`medfuse.serving.client.outputs_to_record` turns the outputs into the same JSON record
`medfuse run` writes.
"""
