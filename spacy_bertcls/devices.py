"""Where pipelines run: the CPU or a CUDA GPU, chosen before a pipeline is loaded.

spaCy's convention (``--gpu-id``): -1 is the CPU, 0 the first GPU. ``use_device`` does what
``spacy.require_gpu(gpu_id)`` / ``spacy.require_cpu()`` do, after checking that the GPU can be
used, with a message that says what to do when it cannot; a pipeline loaded afterwards
(``spacy_bertcls.pipelines.load_pipeline``) puts ``bert_textcat`` on that device.
``bertcls label --device`` calls it; the desktop app can call the same function.
"""

from __future__ import annotations

import importlib.util

import spacy

from .errors import BertclsError

CPU = -1


def use_device(device: int) -> str:
    """Run pipelines loaded from now on on GPU ``device`` (0, 1, ...) or the CPU (-1).

    Returns a description of the device ("CPU", "GPU 0 (NVIDIA H100 80GB HBM3)"). Raises
    BertclsError when the GPU cannot be used: no CUDA GPU visible, a number beyond the GPUs
    there are, or CuPy (which spaCy needs on a GPU) missing.
    """
    if device < CPU:
        raise BertclsError(f"--device {device}: use -1 for the CPU, or 0, 1, ... for a GPU.")
    if device == CPU:
        spacy.require_cpu()
        return "CPU"
    check_gpu(device)
    import torch

    spacy.require_gpu(device)
    return f"GPU {device} ({torch.cuda.get_device_name(device)})"


def check_gpu(device: int, *, option: str = "--device", task: str = "run a pipeline") -> None:
    """Raise BertclsError unless GPU ``device`` can be used (nothing to check for -1, the CPU):
    no CUDA GPU visible, a number beyond the GPUs there are, or CuPy (which spaCy needs on a
    GPU) missing. ``option`` and ``task`` word the message (``--gpu-id``, "train").
    spaCy would fail later with a traceback ("Cannot use GPU, CuPy is not installed")."""
    if device < 0:
        return
    import torch

    cuda = torch.version.cuda
    if not torch.cuda.is_available():
        why = (
            "torch has CUDA but finds no GPU with a working driver"
            if cuda
            else "the installed torch is a CPU-only build"
        )
        raise BertclsError(
            f"{option} {device}: no CUDA GPU visible; use {option} -1 (the CPU), since this "
            f"machine cannot {task} on a GPU: {why}. On a machine with an NVIDIA GPU, install a "
            "CUDA build of torch (https://pytorch.org/get-started/locally/) and CuPy for that "
            "CUDA version (e.g. cupy-cuda12x)."
        )
    count = torch.cuda.device_count()
    if device >= count:
        raise BertclsError(
            f"{option} {device}: this machine has {count} GPU(s), numbered from 0 to "
            f"{count - 1}; use one of those, or {option} -1 for the CPU."
        )
    if importlib.util.find_spec("cupy") is None:
        package = f"cupy-cuda{cuda.split('.')[0]}x" if cuda else "cupy-cuda12x"
        raise BertclsError(
            f"{option} {device}: spaCy needs CuPy to {task} on a GPU, and it is not installed: "
            f"pip install {package} (for torch's CUDA {cuda}). Or use {option} -1 for the CPU."
        )


def use_mixed_precision(nlp: spacy.Language) -> list[str]:
    """Turn on ``mixed_precision`` (float16 autocast of the encoder on a GPU) in every
    ``bert_textcat`` component of a loaded pipeline; returns their names.

    Only predictions change: the setting is what ``[components.NAME.model] mixed_precision =
    true`` gives. Raises BertclsError when the pipeline is not on a GPU (on the CPU it would do
    nothing) or has no bert_textcat component.
    """
    from .architectures import get_shim, set_mixed_precision

    names = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "bert_textcat"]
    if not names:
        raise BertclsError(
            "--mixed-precision is a setting of bert_textcat components, and this pipeline has "
            f"none (its components: {', '.join(nlp.pipe_names) or 'none'})."
        )
    for name in names:
        model = nlp.get_pipe(name).model
        check_not_optimized(model, "--mixed-precision")
        if get_shim(model).device.type != "cuda":
            raise BertclsError(
                "--mixed-precision runs the encoder in float16 on a GPU and does nothing on the "
                "CPU: add --device 0 (or another GPU), or leave it out."
            )
        set_mixed_precision(model, True)
    return names


def check_not_optimized(model, option: str) -> None:
    """Refuse ``option`` (a GPU option) for a pipeline made by ``bertcls optimize``: its
    encoder runs in ONNX Runtime on the CPU whatever the device."""
    from .onnx_backend import is_onnx_pipeline_model

    if is_onnx_pipeline_model(model):
        raise BertclsError(
            f"{option}: this pipeline was made by `bertcls optimize` for the CPU (its encoder "
            "runs in ONNX Runtime on the CPU). On a GPU, use the original pipeline."
        )


def check_pipeline_device(nlp: spacy.Language, device: int) -> None:
    """Refuse a GPU ``device`` for a pipeline whose encoder only runs on the CPU."""
    if device == CPU:
        return
    for name in nlp.pipe_names:
        if nlp.get_pipe_meta(name).factory == "bert_textcat":
            check_not_optimized(nlp.get_pipe(name).model, f"--device {device}")
