"""Whether the files shipped with a served model were made from that very model file.

`compile` records the md5 of the model file it compiled (compiled.json `source_md5`) and `explain` the md5 of
the champion its background was drawn for (explain_background.json `model_md5`). A `dvc repro` interrupted
between stages, or run while `make bento` reads the work tree, leaves a new served model beside an old graph
or background: `package` and `make bento` refuse that state with these messages, naming the stale file and the
command that remakes it.
"""

from __future__ import annotations

from stages.config import ROLES, compiled_dir, served_model
from stages.explain_files import explain_background
from stages.files import md5sum, read_json


def stale_files(task: str) -> list[str]:
    """One line per shipped file not made from the served model it ships with (empty: consistent)."""
    problems = []
    for role in ROLES:
        model = served_model(task, role)
        md5 = md5sum(model)
        record = compiled_dir(task, role) / "compiled.json"
        made_from = read_json(record).get("source_md5")
        if made_from != md5:
            problems.append(f"{record} was made from model md5 {str(made_from)[:8]}, {model} is {md5[:8]}: "
                            f"stale; run `dvc repro compile@{task}`")
        if role == "champion":
            background = explain_background(task)
            made_from = read_json(background).get("model_md5")
            if made_from != md5:
                problems.append(f"{background} was made from model md5 {str(made_from)[:8]}, {model} is "
                                f"{md5[:8]}: stale; run `dvc repro explain@{task}`")
    return problems
