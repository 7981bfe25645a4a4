#!/usr/bin/env python3
"""A stand-in `docker` CLI for the cleanup scripts' tests: Docker can't run here (no daemon, no
network, and none in the TCG test VM, whose image has no docker).

Its state is a JSON file ($FAKE_DOCKER_STATE): {"api": "1.45", "daemon": true, "containers":
[{"ID", "Names", "State", "Labels": {...}, "Networks"}], "volumes": [{"Name", "Anonymous",
"UsedBy": [...]}], "networks": [{"Name", "Labels"}]}. Each call is logged to $FAKE_LOG as
"docker ARGS" (the write_fake convention). What it prints is what the real CLI prints:

- ``docker ps --format TEMPLATE``: Go template fields .ID .Names .State .Labels .Networks,
  and ``{{json .}}`` (https://docs.docker.com/reference/cli/docker/container/ls/#format);
  ``--no-trunc`` gives the 64-digit ID, else 12; ``--filter label=KEY`` keeps containers
  with that label key, ``--all`` the stopped ones too (#filter).
- ``docker rm --force ID``: the ID given, one a line (.../container/rm/).
- ``docker container prune``: "Deleted Containers:" then IDs, a blank line, "Total reclaimed
  space: 0B" (.../container/prune/); ``volume prune``: "Deleted Volumes:" likewise, and since
  API 1.42 (Docker 23) only anonymous volumes unless ``--all`` (.../volume/prune/, and
  moby's API changelog for 1.42: "POST /volumes/prune ... only removes anonymous volumes");
  ``network prune``: "Deleted Networks:" (.../network/prune/).
- ``docker version --format '{{.Server.APIVersion}}'``: e.g. 1.45 (.../version/#format).
- ``docker info`` with no daemon: "Cannot connect to the Docker daemon at
  unix:///var/run/docker.sock. Is the docker daemon running?" and exit 1.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

NO_DAEMON = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?"
)


def load() -> tuple[Path, dict]:
    path = Path(os.environ["FAKE_DOCKER_STATE"])
    return path, json.loads(path.read_text())


def options(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``--name value`` / ``--flag`` options and the rest."""
    flags = {"--all", "-a", "--no-trunc", "--force", "-f", "--quiet", "-q"}
    found: dict[str, list[str]] = {}
    rest = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in flags:
            found.setdefault(arg.lstrip("-")[:1] if len(arg) == 2 else arg[2:], []).append("")
        elif arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            found.setdefault(name, []).append(value)
        elif arg.startswith("--"):
            found.setdefault(arg[2:], []).append(args[i + 1])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return found, rest


def render(template: str, container: dict, full: bool) -> str:
    if template == "{{json .}}":
        return json.dumps({**container, "Labels": labels(container)}, separators=(",", ":"))
    fields = {
        "ID": container["ID"] if full else container["ID"][:12],
        "Names": container["Names"],
        "State": container["State"],
        "Labels": labels(container),
        "Networks": container.get("Networks", ""),
    }
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: fields[m.group(1)], template)


def labels(container: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in container.get("Labels", {}).items())


def ps(state: dict, args: list[str]) -> int:
    opts, _ = options(args)
    keep = [
        c for c in state["containers"] if c["State"] == "running" or "all" in opts or "a" in opts
    ]
    for wanted in opts.get("filter", []):
        key, value = wanted.split("=", 1)
        assert key == "label", f"stand-in: filter {key} not implemented"
        keep = [c for c in keep if value in c.get("Labels", {})]
    template = opts.get("format", ["{{.ID}}\t{{.Names}}"])[0]
    for container in keep:
        print(render(template, container, full="no-trunc" in opts))
    return 0


def prune(state: dict, kind: str, args: list[str]) -> int:
    opts, _ = options(args)
    assert "force" in opts or "f" in opts, "stand-in: prune without --force would prompt"
    gone: list[str] = []
    if kind == "container":
        gone = [c["ID"] for c in state["containers"] if c["State"] != "running"]
        state["containers"] = [c for c in state["containers"] if c["ID"] not in gone]
    elif kind == "volume":
        every = "all" in opts or "a" in opts or float(state["api"]) < 1.42
        gone = [
            v["Name"]
            for v in state["volumes"]
            if not v.get("UsedBy") and (every or v.get("Anonymous"))
        ]
        state["volumes"] = [v for v in state["volumes"] if v["Name"] not in gone]
    elif kind == "network":
        wanted = [f.split("=", 1)[1] for f in opts.get("filter", []) if f.startswith("label=")]
        gone = [
            n["Name"]
            for n in state.get("networks", [])
            if all(w in n.get("Labels", {}) for w in wanted)
            and not any(n["Name"] in c.get("Networks", "") for c in state["containers"])
        ]
        state["networks"] = [n for n in state.get("networks", []) if n["Name"] not in gone]
    if gone:
        print(f"Deleted {kind.title()}s:")
        print("\n".join(gone))
        print()
    if kind != "network":
        print("Total reclaimed space: 0B")
    return 0


def main(argv: list[str]) -> int:
    path, state = load()
    with open(os.environ.get("FAKE_LOG", os.devnull), "a") as log:
        log.write("docker " + " ".join(argv) + "\n")
    if not state.get("daemon", True) and argv[:1] != ["--version"]:
        print(NO_DAEMON, file=sys.stderr)
        return 1
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command in ("container", "volume", "network", "image", "builder") and args[:1] == ["prune"]:
        code = prune(state, command, args[1:])
    elif command in ("container", "volume", "network", "image", "builder"):
        print(f"stand-in: docker {command} {args[:1]} not implemented", file=sys.stderr)
        return 2
    elif command == "ps":
        code = ps(state, args)
    elif command == "rm":
        _, ids = options(args)
        for wanted in ids:
            state["containers"] = [c for c in state["containers"] if c["ID"] != wanted]
            print(wanted)
        code = 0
    elif command == "version":
        print(state["api"])
        code = 0
    elif command == "info":
        code = 0
    else:
        print(f"stand-in: docker {command} not implemented", file=sys.stderr)
        return 2
    path.write_text(json.dumps(state))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
