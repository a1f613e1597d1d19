# SPDX-License-Identifier: GPL-2.0-or-later
"""Create, reach and destroy one L1 test hypervisor VM."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from . import HarnessError, proc
from .image import Image, build_image
from .paths import REPO_ROOT, state_dir
from .qemu import BootSpec, PeerLink, default_accel, free_port, l1_command, overlay_command, tail
from .recipe import get_recipe
from .ssh import scp_command, scp_from_command, ssh_command
from .supervisor import RUNTIME, STATE

DEFAULT_BOOT_TIMEOUT = float(os.environ.get("VHOSTBLK_BOOT_TIMEOUT", "600"))


@dataclass
class Instance:
    """A running L1 VM, described by its instance directory."""

    dir: Path

    @property
    def state(self) -> dict:
        return json.loads((self.dir / STATE).read_text())

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def port(self) -> int:
        return int(self.state["ssh_port"])

    @property
    def key(self) -> Path:
        return Path(self.state["key"])

    @property
    def serial_log(self) -> Path:
        return self.dir / "serial.log"

    def runtime(self) -> dict:
        try:
            data = json.loads((self.dir / RUNTIME).read_text())
        except (OSError, ValueError):
            return {}
        return {k: tuple(v) if v else None for k, v in data.items()}

    def qemu_alive(self) -> bool:
        return proc.alive(self.runtime().get("qemu"))

    def run(self, command: str, timeout: float = 600, check: bool = True,
            input_text: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run a shell command in L1 as root; raise HarnessError with its output when it fails."""
        try:
            res = subprocess.run(ssh_command(self.port, self.key, command), capture_output=True, text=True,
                                 timeout=timeout, input=input_text, check=False)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"L1 command timed out after {timeout}s: {command}\n"
                               f"serial console tail:\n{tail(self.serial_log)}") from exc
        if check and res.returncode != 0:
            raise HarnessError(f"L1 command failed ({res.returncode}): {command}\n"
                               f"stdout:\n{res.stdout[-4000:]}\nstderr:\n{res.stderr[-4000:]}")
        return res

    def put(self, sources: Sequence[Path], dest: str, timeout: float = 300) -> None:
        """Copy host files or directories into L1."""
        res = subprocess.run(scp_command(self.port, self.key, sources, dest, recursive=True),
                             capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise HarnessError(f"scp to L1:{dest} failed: {res.stderr[-2000:]}")

    def get(self, remote_paths: Sequence[str], dest: Path, timeout: float = 300) -> None:
        """Copy files out of L1 into the host directory ``dest``."""
        res = subprocess.run(scp_from_command(self.port, self.key, remote_paths, dest),
                             capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise HarnessError(f"scp of L1:{' '.join(remote_paths)} failed: {res.stderr[-2000:]}")

    def wait_ssh(self, timeout: float = DEFAULT_BOOT_TIMEOUT) -> float:
        """Wait until SSH answers; return the seconds it took. Fails fast if qemu died."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.qemu_alive() and (self.dir / RUNTIME).exists():
                raise HarnessError(f"L1 qemu exited during boot.\nqemu stderr:\n{tail(self.dir / 'qemu.stderr')}\n"
                                   f"serial console tail:\n{tail(self.serial_log)}")
            try:
                res = subprocess.run(ssh_command(self.port, self.key, "true"), capture_output=True, timeout=30,
                                     check=False)
                if res.returncode == 0:
                    return time.monotonic() - start
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise HarnessError(f"L1 did not answer SSH on 127.0.0.1:{self.port} within {timeout:.0f}s.\n"
                           f"serial console tail:\n{tail(self.serial_log)}")

    def ansible_host_vars(self) -> dict:
        from .ssh import common_args

        return {"ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": "root",
                "ansible_private_key_file": str(self.key), "ansible_ssh_common_args": common_args(),
                "ansible_python_interpreter": "/usr/bin/python3"}


def _owner_from_env() -> Optional[proc.ProcId]:
    raw = os.environ.get("VHOSTBLK_OWNER_PID")
    return proc.identity(int(raw)) if raw else None


def create(name: str, distro: str = "debian12", base: Optional[Path] = None, owner: Optional[int] = None,
           extra_disks: Sequence[Path] = (), memory_mib: int = 4096, ttl: float = 4 * 3600,
           boot_timeout: float = DEFAULT_BOOT_TIMEOUT, image: Optional[Image] = None,
           keep_logs_in: Optional[Path] = None, peer_link: Optional[PeerLink] = None,
           shared_disks: Sequence[Path] = (), log=print) -> Instance:
    """Boot a throwaway L1 VM and wait for SSH.

    The VM is owned by ``owner`` (a PID; default $VHOSTBLK_OWNER_PID): when that process ends,
    however it ends, the supervisor stops qemu and deletes the overlay. ``peer_link`` gives it a
    second NIC linked to one other L1, ``shared_disks`` raw images it writes together with others
    (qemu.l1_command).
    """
    for shared in shared_disks:
        if not Path(shared).is_file():
            raise HarnessError(f"shared disk {shared} does not exist (create it first, e.g. qemu-img create -f raw)")
    image = image or build_image(get_recipe(distro), log=log)
    base = Path(base) if base else state_dir() / "instances"
    inst_dir = base / name
    if inst_dir.exists():
        destroy(inst_dir)
    inst_dir.mkdir(parents=True)
    overlay = inst_dir / "overlay.qcow2"
    subprocess.run(overlay_command(image.disk, overlay), check=True)
    spec = BootSpec(kernel=image.kernel, initrd=image.initrd, disk=overlay, ssh_port=free_port(),
                    serial_log=inst_dir / "serial.log", accel=default_accel(), memory_mib=memory_mib,
                    extra_disks=tuple(Path(p) for p in extra_disks), peer_link=peer_link,
                    shared_disks=tuple(Path(p) for p in shared_disks),
                    qemu=os.environ.get("VHOSTBLK_QEMU", "qemu-system-x86_64"))
    owner_id = proc.identity(owner) if owner else _owner_from_env()
    state = {"name": name, "argv": l1_command(spec), "ssh_port": spec.ssh_port, "key": str(image.key),
             "image": str(image.path), "owner": owner_id, "ttl": ttl,
             "keep_logs_in": str(keep_logs_in) if keep_logs_in else None}
    (inst_dir / STATE).write_text(json.dumps(state, indent=2))
    with open(inst_dir / "supervisor.log", "ab") as slog:
        subprocess.Popen([sys.executable, "-m", "vmharness.supervisor", str(inst_dir)], stdin=subprocess.DEVNULL,
                         stdout=slog, stderr=slog, start_new_session=True, cwd=str(REPO_ROOT / "tests"),
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "tests")})
    inst = Instance(inst_dir)
    start = time.monotonic()
    while not (inst_dir / RUNTIME).exists():
        if time.monotonic() - start > 30:
            log_text = tail(inst_dir / "supervisor.log")
            destroy(inst_dir)
            raise HarnessError(f"supervisor did not start qemu:\n{log_text}")
        time.sleep(0.1)
    try:
        took = inst.wait_ssh(boot_timeout)
    except BaseException:
        destroy(inst_dir)
        raise
    log(f"L1 {name}: SSH up on 127.0.0.1:{spec.ssh_port} after {took:.0f}s ({spec.accel})")
    return inst


def destroy(inst_dir: Path, timeout: float = 20) -> None:
    """Stop the VM and remove its directory; also sweeps any qemu still using its overlay."""
    inst_dir = Path(inst_dir)
    inst = Instance(inst_dir)
    runtime = inst.runtime() if inst_dir.exists() else {}
    sup = runtime.get("supervisor")
    proc.terminate(sup, grace=timeout)
    proc.terminate(runtime.get("qemu"), grace=5)
    for pid in proc.pids_with_arg(str(inst_dir / "overlay.qcow2")):
        proc.terminate(proc.identity(pid), grace=5)
    shutil.rmtree(inst_dir, ignore_errors=True)


def shell_quote(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
