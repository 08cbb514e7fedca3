"""Owners from cgroup paths: literal paths as systemd, Docker, containerd, CRI-O, Podman
and procpilot's controller lay them out (cgroup v1 and v2 /proc/<pid>/cgroup files)."""

from __future__ import annotations

import pytest

from procpilot.core.cgroupfs import parse_proc_cgroup
from procpilot.core.owner import Owner, cgroup_path, owner_of

ID = "4f3c1d0e9b8a7f6e5d4c3b2a19081726354453627180918273645546372819aa"
POD = "0d8e2f1a-5b6c-4d7e-8f90-a1b2c3d4e5f6"
CTL_ROOT = "procpilot-%2Frun%2Fprocpilot%2Fcontrol.sock"
CTL_UNIT = "/system.slice/procpilot.service"
CELL = f"{CTL_UNIT}/{CTL_ROOT}/web-0-3"


@pytest.mark.parametrize(("path", "owner"), [
    ("/system.slice/nginx.service", Owner("", unit="nginx.service")),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-2131.scope",
     Owner("", unit="app-gnome-firefox-2131.scope")),
    ("/user.slice/user-1000.slice/session-3.scope", Owner("", unit="session-3.scope")),
    # Docker: cgroupfs driver (v1 hosts), systemd driver (v2 hosts)
    (f"/docker/{ID}", Owner("", container=ID)),
    (f"/system.slice/docker-{ID}.scope", Owner("", unit=f"docker-{ID}.scope", container=ID)),
    # containerd under Kubernetes: cgroupfs and systemd drivers
    (f"/kubepods/burstable/pod{POD}/{ID}", Owner("", container=ID, pod=POD)),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
     f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
     Owner("", unit=f"cri-containerd-{ID}.scope", container=ID, pod=POD)),
    (f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice", Owner("", pod=POD)),
    # CRI-O: the container, and its monitor (conmon), which is not in the container
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/crio-{ID}.scope", Owner("", unit=f"crio-{ID}.scope", container=ID, pod=POD)),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/crio-conmon-{ID}.scope", Owner("", unit=f"crio-conmon-{ID}.scope", pod=POD)),
    # Podman: rootful with systemd (v2: the payload sits in a "container" leaf), rootless,
    # cgroupfs manager, and conmon
    (f"/machine.slice/libpod-{ID}.scope/container",
     Owner("", unit=f"libpod-{ID}.scope", container=ID)),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope",
     Owner("", unit=f"libpod-{ID}.scope", container=ID)),
    (f"/libpod_parent/libpod-{ID}", Owner("", container=ID)),
    (f"/machine.slice/libpod-conmon-{ID}.scope", Owner("", unit=f"libpod-conmon-{ID}.scope")),
    # procpilot-controller cells, under its unit and inside a container
    (f"/system.slice/procpilot-controller.service/{CTL_ROOT}/web-0-3",
     Owner("", unit="procpilot-controller.service", program="web")),
    (f"/system.slice/procpilot-controller.service/{CTL_ROOT}/api-v2-1-0",
     Owner("", unit="procpilot-controller.service", program="api-v2")),
    (f"/docker/{ID}/{CTL_ROOT}/worker-12", Owner("", container=ID, program="worker")),
    ("/system.slice/procpilot-controller.service/procpilot-supervisor",
     Owner("", unit="procpilot-controller.service")),
    ("/user.slice/procpilot-run/run-4242-98765", Owner("")),  # procpilot-run: no program
    # outside the reader's cgroup namespace, and the root
    (f"/../../docker-{ID}.scope", Owner("", unit=f"docker-{ID}.scope", container=ID)),
    ("/", Owner("")),
])
def test_owner_of_real_world_paths(path: str, owner: Owner) -> None:
    assert owner_of(path) == owner._replace(cgroup=path)


def test_label_names_the_most_specific_owner() -> None:
    assert Owner("/x", unit="a.service", container=ID, program="web").label == "program:web"
    assert Owner("/x", unit="a.service", container=ID, pod=POD).label == f"container:{ID}"
    assert Owner("/x", unit="a.service", pod=POD).label == f"pod:{POD}"
    assert Owner("/x", unit="a.service").label == "unit:a.service"
    assert Owner("/").label == ""


@pytest.mark.parametrize(("content", "path"), [
    # pure v2 (systemd host)
    ("0::/system.slice/nginx.service\n", "/system.slice/nginx.service"),
    # hybrid: systemd's named v1 hierarchy and the unified one agree
    ("12:pids:/system.slice/nginx.service\n1:name=systemd:/system.slice/nginx.service\n"
     "0::/system.slice/nginx.service\n", "/system.slice/nginx.service"),
    # v1 only, Docker's cgroupfs driver: every controller has the container's path
    (f"11:memory:/docker/{ID}\n4:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n",
     f"/docker/{ID}"),
    # v1 without systemd, one controller moved (this test machine's shape)
    ("9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n", "/process_api/abc"),
    ("0::/\n", "/"),
    # a controller's cell on a v1 host with systemd: only in the controllers' hierarchies
    (f"11:pids:{CELL}\n10:freezer:{CELL}\n7:memory:{CELL}\n4:cpu,cpuacct:{CELL}\n"
     f"3:blkio:{CTL_UNIT}\n1:name=systemd:{CTL_UNIT}\n", CELL),
    # the same on a hybrid host: the unified hierarchy has the controller's unit only
    (f"11:pids:{CELL}\n7:memory:{CELL}\n4:cpu,cpuacct:{CELL}\n1:name=systemd:{CTL_UNIT}\n"
     f"0::{CTL_UNIT}\n", CELL),
])
def test_cgroup_path_picks_where_the_process_was_placed(content: str, path: str) -> None:
    assert cgroup_path(parse_proc_cgroup(content)) == path
