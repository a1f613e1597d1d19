# SPDX-License-Identifier: GPL-2.0-or-later
"""SSH and SCP command lines for reaching L1 on 127.0.0.1."""

from pathlib import Path

SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    "-o", "BatchMode=yes",
    "-o", "ServerAliveInterval=15",
    "-o", "ServerAliveCountMax=8",
)


def ssh_command(port: int, key: Path, remote_cmd: str, user: str = "root") -> list:
    return ["ssh", "-i", str(key), "-p", str(port), *SSH_OPTIONS, f"{user}@127.0.0.1", remote_cmd]


def scp_command(port: int, key: Path, sources, dest: str, user: str = "root", recursive: bool = False) -> list:
    cmd = ["scp", "-q", "-i", str(key), "-P", str(port), *SSH_OPTIONS]
    if recursive:
        cmd.append("-r")
    cmd += [str(s) for s in sources]
    cmd.append(f"{user}@127.0.0.1:{dest}")
    return cmd


def scp_from_command(port: int, key: Path, remote_paths, dest: Path, user: str = "root") -> list:
    """Copy files out of L1 into the host directory ``dest``."""
    return ["scp", "-q", "-i", str(key), "-P", str(port), *SSH_OPTIONS,
            *[f"{user}@127.0.0.1:{p}" for p in remote_paths], str(dest)]


def common_args() -> str:
    """The options as one string, for ansible_ssh_common_args."""
    return " ".join(SSH_OPTIONS)
