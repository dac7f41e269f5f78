"""A built-in compositional task suite, generated (no download) in the Super-NI task-file schema.

Six primitive skills act on short lowercase words; each suite task applies two of them in order, described by a
natural-language definition. The ground-truth task -> skills map is saved with the suite, so the workflow can test
whether learned task-skill allocations group tasks that share skills (OrchMoE Figure 3). The primitive tasks
(one skill each) form a separate split used to pretrain the tiny demo bases from scratch.
"""
from __future__ import annotations

import itertools
import random
from pathlib import Path

from orchmoe.errors import DataError
from orchmoe.io import atomic_path, write_json

VOWELS = set("aeiou")
ALPHABET = "abcdefgh"  # two vowels; few symbols and short words keep the tasks learnable by tiny byte models
WORD_LENGTH = (3, 5)
N_WORDS = sum(len(ALPHABET) ** k for k in range(WORD_LENGTH[0], WORD_LENGTH[1] + 1))


def _dedupe(s: str) -> str:
    return "".join(dict.fromkeys(s))


PRIMITIVES = {  # name: (function, phrase used in definitions)
    "reverse": (lambda s: s[::-1], "reverse it"),
    "sort": (lambda s: "".join(sorted(s)), "sort its letters"),
    "upper": (lambda s: s.upper(), "uppercase it"),
    "dedupe": (_dedupe, "drop repeated letters"),
    "rotate": (lambda s: s[1:] + s[:1], "rotate it left by one"),
    "drop_vowels": (lambda s: "".join(c for c in s if c.lower() not in VOWELS), "delete the vowels"),
}


def apply(skills: list[str], word: str) -> str:
    for skill in skills:
        word = PRIMITIVES[skill][0](word)
    return word


def spaced(word: str) -> str:
    """Letters are written space-separated, so ROUGE (which tokenises on words) gives partial credit for a
    partly right answer, as on Super-NI's multi-word outputs; exact match still needs every letter right."""
    return " ".join(word)


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(*WORD_LENGTH)))


def composition_tasks(max_tasks: int = 20) -> list[tuple[str, ...]]:
    """Ordered pairs of distinct primitives whose composition differs from each part and from every other pair."""
    probe = [random_word(random.Random(i)) + "aa" for i in range(40)]
    signatures, tasks = set(), []
    singles = {tuple(apply([p], w) for w in probe) for p in PRIMITIVES}
    for a, b in itertools.permutations(PRIMITIVES, 2):
        sig = tuple(apply([a, b], w) for w in probe)
        if sig in signatures or sig in singles:
            continue
        signatures.add(sig)
        tasks.append((a, b))
    return tasks[:max_tasks]


def definition(skills) -> str:
    steps = [PRIMITIVES[s][1] for s in skills]
    # Short on purpose: the tiny demo models read bytes, and the definition is their only task signal.
    if len(steps) == 1:
        return f"{steps[0][0].upper()}{steps[0][1:]}."
    return f"First {steps[0]}, then {', then '.join(steps[1:])}."


def task_file(name: str, skills, n_instances: int, seed: int) -> dict:
    rng = random.Random(f"{seed}:{name}")
    words, instances = set(), []
    while len(instances) < n_instances:
        w = random_word(rng)
        if w in words and len(words) < N_WORDS:  # distinct inputs while any are left
            continue
        words.add(w)
        instances.append({"id": f"{name.split('_')[0]}-{len(instances):05d}", "input": spaced(w),
                          "output": [spaced(apply(skills, w))]})
    return {
        "Contributors": ["orchmoe built-in suite"], "Source": ["generated"], "URL": [],
        "Categories": ["Program Execution"], "Reasoning": [], "Definition": [definition(skills)],
        "Input_language": ["English"], "Output_language": ["English"], "Instruction_language": ["English"],
        "Domains": ["Code"], "Positive Examples": [{"input": spaced("abcb"), "output": spaced(apply(skills, "abcb")),
                                                     "explanation": "generated"}],
        "Negative Examples": [], "Instances": instances, "Instance License": ["Apache 2.0"],
    }


def write_builtin_suite(out_dir, n_instances: int = 200, n_primitive_instances: int = 400, max_tasks: int = 20,
                        seed: int = 0) -> dict:
    """Write tasks/ (compositions), primitives/tasks/ (single skills) and skills.json (written last) under out_dir."""
    out_dir = Path(out_dir)
    for name, value in (("n_instances", n_instances), ("n_primitive_instances", n_primitive_instances),
                        ("max_tasks", max_tasks)):
        if value < 1:
            raise DataError(f"builtin suite: {name}={value} must be at least 1")
    (out_dir / "skills.json").unlink(missing_ok=True)
    skills_map, domains = {}, {}
    with atomic_path(out_dir / "tasks") as tmp:
        for i, skills in enumerate(composition_tasks(max_tasks)):
            name = f"task{9000 + i}_{'_then_'.join(skills)}"
            write_json(tmp / f"{name}.json", task_file(name, skills, n_instances, seed))
            skills_map[name] = list(skills)
            domains[name] = skills[0]  # MoA on the built-in suite: the domain is the first skill applied
    with atomic_path(out_dir / "primitives") as tmp:
        for i, skill in enumerate(PRIMITIVES):
            name = f"task{9900 + i}_{skill}"
            write_json(tmp / "tasks" / f"{name}.json", task_file(name, [skill], n_primitive_instances, seed))
    meta = {"skills": skills_map, "domains": domains, "primitives": list(PRIMITIVES), "seed": seed,
            "n_instances": n_instances, "n_primitive_instances": n_primitive_instances}
    write_json(out_dir / "skills.json", meta)
    return meta


def markdown_table(max_tasks: int = 20) -> str:
    """The suite's tasks, skills and definitions as a markdown table (docs/data.md quotes it)."""
    lines = ["| task | skills | Definition |", "|---|---|---|"]
    for i, skills in enumerate(composition_tasks(max_tasks)):
        lines.append(f"| task{9000 + i}_{'_then_'.join(skills)} | {', '.join(skills)} | {definition(skills)} |")
    for i, skill in enumerate(PRIMITIVES):
        lines.append(f"| task{9900 + i}_{skill} (primitive split) | {skill} | {definition([skill])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
