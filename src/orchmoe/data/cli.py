"""Data commands: `orchmoe builtin-suite`, `superni-sample`, `superni-download`, `domains-sample`."""
from __future__ import annotations


def _n_tasks(value: str):
    return "all" if value == "all" else int(value)


def register(sub) -> None:
    p = sub.add_parser("builtin-suite", help="generate the built-in compositional suite in Super-NI task-file schema")
    p.add_argument("--out", required=True, help="folder for tasks/, primitives/tasks/ and skills.json")
    p.add_argument("--n-instances", type=int, default=200)
    p.add_argument("--n-primitive-instances", type=int, default=400)
    p.add_argument("--max-tasks", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_builtin)

    p = sub.add_parser("superni-sample", help="sample a suite (train/eval/unseen JSONL + manifest) from task files")
    p.add_argument("--tasks-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n-tasks", type=_n_tasks, required=True, help="number of seen tasks, or 'all'")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=100)
    p.add_argument("--n-unseen", type=int, default=10)
    p.add_argument("--n-unseen-eval", type=int, default=100)
    p.add_argument("--n-unseen-train", type=int, default=0,
                   help="few-shot examples per unseen task (unseen_train.jsonl, for `orchmoe adapt`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--english-only", action="store_true")
    p.add_argument("--train-split-only", action="store_true", help="seen tasks from splits/default/train_tasks.txt")
    p.add_argument("--num-pos-examples", type=int, default=0, help="k positive examples in each prompt")
    p.add_argument("--split-file", help="a task list (e.g. splits/default/test_tasks.txt): restricts the pool")
    p.add_argument("--prompt-format", default="definition", choices=["definition", "tk_instruct", "mttl_ni"],
                   help="orchmoe/data/prompts.py; docs/data.md shows each verbatim")
    p.add_argument("--strict", action="store_true", help="error instead of taking what exists for short tasks")
    p.add_argument("--task-domains", help="skills.json of the built-in suite (its 'domains' map labels examples)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("superni-download", help="clone allenai/natural-instructions (tasks/ and splits/); needs internet")
    p.add_argument("--out", required=True)
    p.add_argument("--revision", default="master")
    p.add_argument("--print-only", action="store_true", help="print the commands (for a machine with internet)")
    p.set_defaults(func=_download)

    p = sub.add_parser("domains-sample", help="sample MoA's domain datasets (config/domains.yaml) into a suite")
    p.add_argument("--config", default="config/domains.yaml", help="the domain table")
    p.add_argument("--out", required=True)
    p.add_argument("--domains", help="comma-separated subset of the table's domains (default: all, table order)")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true", help="error instead of taking what exists for short domains")
    p.set_defaults(func=_domains)


def _builtin(args) -> None:
    from .builtin import write_builtin_suite

    meta = write_builtin_suite(args.out, args.n_instances, args.n_primitive_instances, args.max_tasks, args.seed)
    print(f"wrote {len(meta['skills'])} tasks and {len(meta['primitives'])} primitive tasks to {args.out}")


def _sample(args) -> None:
    from pathlib import Path

    from orchmoe.errors import DataError

    from .superni import sample_superni

    domains = None
    if args.task_domains:
        path = Path(args.task_domains)
        if not path.is_file():
            raise DataError(f"{path}: --task-domains file not found")
        from orchmoe.io import read_json

        raw = read_json(path)
        domains = raw.get("domains") if isinstance(raw, dict) else None
        if not isinstance(domains, dict):
            raise DataError(f"{path}: field 'domains' (task -> domain) is missing")
    m = sample_superni(args.tasks_dir, args.out, args.n_tasks, args.n_train, args.n_eval, args.n_unseen,
                       args.n_unseen_eval, args.seed, args.english_only, args.train_split_only,
                       args.num_pos_examples, args.strict, domains, args.split_file, args.prompt_format,
                       args.n_unseen_train)
    print(f"{args.out}: {len(m['tasks'])} tasks, {m['counts']}; short tasks: {len(m['short_tasks'])}")


def _download(args) -> None:
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from orchmoe.errors import DataError
    from orchmoe.io import atomic_path

    url = "https://github.com/allenai/natural-instructions"
    if args.print_only:
        print(f"git clone --depth 1 --branch {args.revision} {url} ni && mkdir -p {args.out} && "
              f"cp -r ni/tasks ni/splits {args.out}/")
        return
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["git", "clone", "--depth", "1", "--branch", args.revision, url, tmp + "/ni"]
        if subprocess.run(cmd).returncode != 0:
            raise DataError(f"could not clone {url} (offline?); put its tasks/ and splits/ folders under {args.out}")
        for part in ("tasks", "splits"):
            with atomic_path(Path(args.out) / part) as dst:
                shutil.copytree(f"{tmp}/ni/{part}", dst)
    print(f"Super-NI task files in {args.out}/tasks")


def _domains(args) -> None:
    from .domains import sample_domains

    names = [d.strip() for d in args.domains.split(",") if d.strip()] if args.domains else None
    m = sample_domains(args.config, args.out, args.n_train, args.n_eval, args.seed, names, args.strict)
    print(f"{args.out}: {len(m['domains'])} domains, {m['counts']}; short domains: {len(m['short_tasks'])}")
