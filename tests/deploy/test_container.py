"""deploy/container/Containerfile: not built here (no container engine), only checked that
what it copies exists and that it sets up what the manifests expect."""

from __future__ import annotations

import re

import yaml

from .conftest import REPO

CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_copied_sources_exist_in_the_build_context() -> None:
    sources = [
        src
        for op, args in instructions()
        if op == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert sources
    assert [s for s in sources if not (REPO / s).exists()] == []


def test_the_image_does_not_run_as_root() -> None:
    users = [args for op, args in instructions() if op == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_kubernetes_runs_the_image_user() -> None:
    uid = re.search(r"--uid (\d+)", CONTAINERFILE.read_text())
    assert uid
    daemonset = yaml.safe_load((REPO / "deploy" / "kubernetes" / "daemonset.yaml").read_text())
    assert daemonset["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid[1])
