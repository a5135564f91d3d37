#!/usr/bin/env python3
"""Checks that the Dockerfile builds what CI builds: its builder stage runs build-binaries.sh, every binary a
runtime stage copies is one the script builds, every binary the script builds (each service crate with a
main, and trustctl) has a stage of its own named after it, and every runtime stage runs as a numeric
non-root user.

Usage: check_dockerfile.py [DOCKERFILE]   (default: the repository's Dockerfile)
Exit status 0 when it holds, 1 with one line per problem otherwise.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "deploy/container/build-binaries.sh"


def stages(text):
    """[(name, base, instructions)] in order; instructions with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.I)
            base, name = match.group(1), match.group(2) or ""
            result.append((name, base, []))
        elif result:
            result[-1][2].append((word.upper(), rest.strip()))
    return result


def problems_of(text, script_binaries, service_binaries):
    problems = []
    all_stages = stages(text)
    by_name = {name: (base, instructions) for name, base, instructions in all_stages}
    builder = [name for name, _, instructions in all_stages if any(SCRIPT in arg for op, arg in instructions if op == "RUN")]
    if not builder:
        problems.append(f"no stage RUNs {SCRIPT}")
    for binary in sorted(set(service_binaries) - set(script_binaries)):
        problems.append(f"{binary} has a main but {SCRIPT} does not build it")
    for binary in script_binaries:
        if binary not in by_name:
            problems.append(f"no stage named {binary} (docker build --target {binary})")
    for name, base, instructions in all_stages:
        if name in builder:
            continue
        for op, arg in instructions:
            if op != "COPY" or "--from=" not in arg:
                continue
            source = arg.split()[1]
            copied = Path(source).name
            if copied not in script_binaries:
                problems.append(f"stage {name or base} copies {source}, which {SCRIPT} does not build")
        if name in script_binaries:
            copies = [a for op, a in instructions if op == "COPY" and a.split()[1].endswith("/" + name)]
            if not copies:
                problems.append(f"stage {name} does not copy the {name} binary")
            entry = [a for op, a in instructions if op == "ENTRYPOINT"]
            if not entry or name not in entry[-1]:
                problems.append(f"stage {name} does not run {name} (ENTRYPOINT)")
            user = effective_user(name, by_name)
            if user is None or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
                problems.append(f"stage {name} does not run as a numeric non-root USER (has {user})")
    return problems


def effective_user(stage, by_name):
    """The last USER of the stage or, failing that, of the stage it is built FROM."""
    seen = set()
    while stage in by_name and stage not in seen:
        seen.add(stage)
        base, instructions = by_name[stage]
        users = [a for op, a in instructions if op == "USER"]
        if users:
            return users[-1]
        stage = base
    return None


def main(argv):
    dockerfile = Path(argv[1]) if len(argv) > 1 else REPO / "Dockerfile"
    listed = subprocess.run([str(REPO / SCRIPT), "--list"], check=True, capture_output=True, text=True)
    script_binaries = listed.stdout.split()
    service_binaries = sorted(p.parent.parent.name for p in (REPO / "services").glob("*/src/main.rs"))
    problems = problems_of(dockerfile.read_text(encoding="utf-8"), script_binaries, service_binaries)
    for problem in problems:
        print(f"{dockerfile}: {problem}")
    if not problems:
        print(f"{dockerfile}: builds {', '.join(script_binaries)} with {SCRIPT}, one non-root stage each")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
