"""Read Super-NaturalInstructions task files (allenai/natural-instructions `tasks/task*.json`) and sample a suite.

Sampling follows OrchMoE section 4.1 (after Ponti et al.) as implemented by microsoft/mttl's
`create_ni_dataset.py`: K seen tasks drawn with a seed; per seen task the instances are shuffled and split into the
first n_train for training and the next n_eval for evaluation (disjoint); unseen tasks keep their first
n_unseen_eval instances in file order (the same for every seed). Short tasks: see `split_short_task`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

from orchmoe.errors import DataError
from orchmoe.io import atomic_path, md5_file, read_json, write_json, write_jsonl

from .prompts import build_prompt

log = logging.getLogger(__name__)


@dataclass
class Task:
    name: str
    definition: str
    instances: list[dict]  # {"id", "input", "output": [...]}
    positive_examples: list[dict]
    input_language: list[str]
    output_language: list[str]
    categories: list[str]
    path: Path


def read_task(path: str | Path) -> Task:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)  # Python's json accepts the NaN some originals hold in "URL"
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a task file must hold a JSON object")
    definition = raw.get("Definition")
    if isinstance(definition, list):
        definition = definition[0] if definition else None
    if not isinstance(definition, str) or not definition.strip():
        raise DataError(f"{path}: field 'Definition' is missing or empty")
    instances = raw.get("Instances")
    if not isinstance(instances, list) or not instances:
        raise DataError(f"{path}: field 'Instances' is missing or empty")
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or "id" not in inst:
            raise DataError(f"{path}: Instances[{i}] needs an 'id'")
        if not isinstance(inst.get("input"), str):
            raise DataError(f"{path}: Instances[{i}] (id {inst['id']!r}) has no string 'input'")
        out = inst.get("output")
        if isinstance(out, str):
            inst["output"] = out = [out]
        if not isinstance(out, list) or not out or not all(isinstance(o, str) for o in out):
            raise DataError(f"{path}: Instances[{i}] (id {inst['id']!r}) has no 'output'")
    positives = []
    for ex in raw.get("Positive Examples") or []:
        out = ex.get("output") if isinstance(ex, dict) else None
        out = out[0] if isinstance(out, list) and out else out
        if isinstance(ex, dict) and isinstance(ex.get("input"), str) and isinstance(out, str):
            positives.append({"input": ex["input"], "output": out})
    return Task(name=path.stem, definition=definition, instances=instances, positive_examples=positives,
                input_language=list(raw.get("Input_language", [])), output_language=list(raw.get("Output_language", [])),
                categories=list(raw.get("Categories", [])), path=path)


def list_task_files(tasks_dir: str | Path) -> list[Path]:
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise DataError(f"{tasks_dir}: Super-NI tasks directory not found (set data source or run `orchmoe superni-download`)")
    files = sorted(tasks_dir.glob("task*.json"))
    if not files:
        raise DataError(f"{tasks_dir}: no task*.json files")
    return files


def read_task_meta(path: str | Path, keys=("Input_language", "Output_language"), chunk: int = 1 << 16) -> dict:
    """The top-level fields `keys` of a task file without parsing its Instances (the bulk of the file).

    Task files put the metadata before "Instances" (allenai/natural-instructions): the object is decoded field by
    field from the start, reading more text only when a value is incomplete, until `keys` are found. A file that
    puts Instances first is parsed whole (still one file at a time: memory stays flat either way)."""
    path = Path(path)
    decoder, meta = json.JSONDecoder(), {}
    try:
        with open(path, encoding="utf-8") as f:
            state = {"buf": "", "eof": False}

            def more() -> bool:
                text = f.read(max(chunk, len(state["buf"])))
                state["buf"] += text
                state["eof"] = not text
                return bool(text)

            def skip(pos: int, chars: str) -> int:
                while True:
                    buf = state["buf"]
                    while pos < len(buf) and buf[pos] in chars:
                        pos += 1
                    if pos < len(buf) or not more():
                        return pos

            def decode(pos: int):
                while True:
                    try:
                        return decoder.raw_decode(state["buf"], pos)
                    except json.JSONDecodeError:
                        if not more():
                            raise

            pos = skip(0, " \t\r\n")
            if state["buf"][pos:pos + 1] != "{":
                raise json.JSONDecodeError("a task file must hold a JSON object", state["buf"], pos)
            pos += 1
            while not all(k in meta for k in keys):
                pos = skip(pos, " \t\r\n,")
                if state["buf"][pos:pos + 1] in ("}", ""):
                    break
                key, pos = decode(pos)
                pos = skip(pos, " \t\r\n:")
                if key == "Instances":  # metadata after the instances: parse the whole file once
                    f.seek(0)
                    raw = json.load(f)
                    return {k: raw[k] for k in keys if k in raw}
                meta[key], pos = decode(pos)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return {k: meta[k] for k in keys if k in meta}


def split_short_task(n: int, n_train: int, n_eval: int) -> tuple[int, int]:
    """How many instances go to train and eval when a task has fewer than n_train + n_eval.

    Policy: take what exists, keep train and eval disjoint, and give eval its requested share
    n_eval / (n_train + n_eval) of the instances (at least 1); the rest trains. Recorded in the manifest.
    """
    if n >= n_train + n_eval:
        return n_train, n_eval
    share = max(1, math.ceil(n * n_eval / (n_train + n_eval)))
    return n - share, share


def plan_split(n: int, n_train: int, n_eval: int, strict: bool, where, name: str, short: dict,
               unit: str = "instances") -> tuple[int, int]:
    """`split_short_task`, plus the policy around it: an error under strict sampling, else recorded and warned."""
    k_train, k_eval = split_short_task(n, n_train, n_eval)
    if (k_train, k_eval) != (n_train, n_eval):
        if strict:
            raise DataError(f"{where}: {n} {unit}, fewer than n_train + n_eval = {n_train + n_eval} (strict sampling)")
        short[name] = {"instances": n, "train": k_train, "eval": k_eval}
        log.warning("%s: %d %s < %d requested; using %d train / %d eval", name, n, unit, n_train + n_eval,
                    k_train, k_eval)
    return k_train, k_eval


def example(task: Task, task_id: int, inst: dict, num_pos_examples: int, prompt_format: str = "definition") -> dict:
    return {
        "id": inst["id"], "task": task.name, "task_id": task_id, "domain": None, "domain_id": -1,
        "prompt": build_prompt(task.definition, inst["input"], task.positive_examples[:num_pos_examples],
                               prompt_format),
        "target": inst["output"][0], "references": list(inst["output"]),
    }


def read_split_file(path: Path) -> set[str] | None:
    """Task names of an official split list (splits/default/train_tasks.txt, test_tasks.txt); None if absent."""
    if not path.is_file():
        return None
    try:
        return set(path.read_text(encoding="utf-8").split())
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def sample_superni(tasks_dir, out_dir, n_tasks: int | str, n_train: int = 1000, n_eval: int = 100, n_unseen: int = 10,
                   n_unseen_eval: int = 100, seed: int = 0, english_only: bool = False,
                   train_split_only: bool = False, num_pos_examples: int = 0, strict: bool = False,
                   task_domains: dict[str, str] | None = None, split_file=None,
                   prompt_format: str = "definition") -> dict:
    """Sample a suite into out_dir. task_domains (task -> domain name) labels examples for MoA.

    Memory stays flat in the corpus size: tasks are chosen from file names (and, for english_only, the language
    fields read without the instances), then the chosen files are read one at a time and their rows streamed to
    the output files. split_file: a task list (e.g. the official test_tasks.txt) that restricts the pool."""
    files = {p.stem: p for p in list_task_files(tasks_dir)}
    for name, value in (("n_tasks", n_tasks), ("n_train", n_train), ("n_eval", n_eval)):
        if value != "all" and value < 1:
            raise DataError(f"sample size {name}={value} must be at least 1")
    build_prompt("", "", [], prompt_format)  # an unknown format fails before any file is read
    pool = sorted(files)
    if split_file is not None:
        listed = read_split_file(Path(split_file))
        if listed is None:
            raise DataError(f"{split_file}: split file not found")
        pool = [t for t in pool if t in listed]
        if not pool:
            raise DataError(f"{split_file}: none of its tasks has a file in {tasks_dir}")
    if english_only:
        def english(name):
            meta = read_task_meta(files[name])
            return meta.get("Input_language") == ["English"] and meta.get("Output_language") == ["English"]

        pool = [t for t in pool if english(t)]
    splits_dir = Path(tasks_dir).parent / "splits" / "default"
    seen_pool, unseen_pool = pool, pool
    if train_split_only:
        train_names = read_split_file(splits_dir / "train_tasks.txt")
        if train_names is None:
            raise DataError(f"{splits_dir / 'train_tasks.txt'}: needed by train_split_only but not found")
        test_names = read_split_file(splits_dir / "test_tasks.txt") or set()
        seen_pool = [t for t in pool if t in train_names]
        unseen_pool = [t for t in pool if t in test_names] or [t for t in pool if t not in train_names]
    if n_tasks == "all":
        n_tasks = len(seen_pool)
    if n_tasks > len(seen_pool):
        raise DataError(f"{tasks_dir}: n_tasks={n_tasks} but only {len(seen_pool)} eligible tasks")
    rng = random.Random(seed)
    seen = sorted(rng.sample(seen_pool, n_tasks))
    rest = [t for t in unseen_pool if t not in set(seen)]
    if n_unseen > len(rest):
        if strict:
            raise DataError(f"{tasks_dir}: n_unseen={n_unseen} but only {len(rest)} tasks remain after the seen ones")
        log.warning("only %d unseen tasks available (asked %d)", len(rest), n_unseen)
    unseen = sorted(rng.sample(rest, min(n_unseen, len(rest))))

    domains = sorted({task_domains[t] for t in seen + unseen if t in task_domains}) if task_domains else []

    def labelled(row):
        if task_domains and row["task"] in task_domains:
            row["domain"] = task_domains[row["task"]]
            row["domain_id"] = domains.index(row["domain"])
        return row

    params = {"n_tasks": n_tasks, "n_train": n_train, "n_eval": n_eval, "n_unseen": n_unseen,
              "n_unseen_eval": n_unseen_eval, "english_only": english_only, "train_split_only": train_split_only,
              "num_pos_examples": num_pos_examples, "prompt_format": prompt_format,
              "split_file": str(split_file) if split_file else None}
    out_dir = Path(out_dir)
    (out_dir / "manifest.json").unlink(missing_ok=True)  # a suite without manifest.json is incomplete
    created = not out_dir.exists()
    try:
        return _write_streamed(files, out_dir, seen, unseen, domains, labelled, seed, strict, params)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a bad task file met while streaming leaves nothing behind
        raise


def _write_streamed(files, out_dir, seen, unseen, domains, labelled, seed, strict, params) -> dict:
    """Read the chosen task files one at a time, stream their rows into the three splits, then the manifest."""
    n_train, n_eval, n_unseen_eval = params["n_train"], params["n_eval"], params["n_unseen_eval"]
    num_pos_examples, prompt_format = params["num_pos_examples"], params["prompt_format"]
    counts = {"train": 0, "eval": 0, "unseen": 0}
    ids = {"train": {}, "eval": {}, "unseen": {}}
    short, sources = {}, {}
    with contextlib.ExitStack() as stack:
        sinks = {}
        for split, file in (("train", "train.jsonl"), ("eval", "eval.jsonl"), ("unseen", "unseen.jsonl")):
            sinks[split] = stack.enter_context(open(stack.enter_context(atomic_path(out_dir / file)), "w",
                                                    encoding="utf-8"))

        def emit(split, task, task_id, instances):
            for inst in instances:
                row = labelled(example(task, task_id, inst, num_pos_examples, prompt_format))
                sinks[split].write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
                ids[split].setdefault(task.name, []).append(row["id"])
                counts[split] += 1

        for task_id, name in enumerate(seen):  # one task in memory at a time
            task = read_task(files[name])
            order = list(task.instances)
            random.Random(f"{seed}:{name}").shuffle(order)
            k_train, k_eval = plan_split(len(order), n_train, n_eval, strict, task.path, name, short)
            emit("train", task, task_id, order[:k_train])
            emit("eval", task, task_id, order[k_train:k_train + k_eval])
            sources[name] = md5_file(task.path)
            del task, order
        for name in unseen:
            task = read_task(files[name])
            n = len(task.instances)
            if n < n_unseen_eval:
                if strict:
                    raise DataError(f"{task.path}: {n} instances < n_unseen_eval={n_unseen_eval} (strict)")
                short[name] = {"instances": n, "unseen_eval": n}
                log.warning("%s: %d instances < %d requested; using %d unseen eval", name, n, n_unseen_eval, n)
            emit("unseen", task, -1, task.instances[:n_unseen_eval])
            sources[name] = md5_file(task.path)
            del task
        for sink in sinks.values():
            sink.close()  # flushed before the atomic renames on leaving the stack

    manifest = {
        "kind": "superni", "tasks": seen, "unseen_tasks": unseen, "domains": domains, "seed": seed,
        "params": params,
        "counts": counts,
        "short_tasks": short,
        "sources": {name: sources[name] for name in seen + unseen},
        "instance_ids": ids,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def write_suite(out_dir, manifest: dict, train: list, evaluation: list, unseen: list) -> None:
    """Write the three splits, then the manifest last: a suite without manifest.json is incomplete."""
    out_dir = Path(out_dir)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    write_jsonl(out_dir / "train.jsonl", train)
    write_jsonl(out_dir / "eval.jsonl", evaluation)
    write_jsonl(out_dir / "unseen.jsonl", unseen)
    write_json(out_dir / "manifest.json", manifest)


def read_suite(suite_dir) -> dict:
    suite_dir = Path(suite_dir)
    manifest = suite_dir / "manifest.json"
    if not manifest.is_file():
        raise DataError(f"{suite_dir}: not a complete suite (manifest.json missing)")
    return read_json(manifest)
