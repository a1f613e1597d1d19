# SPDX-License-Identifier: GPL-2.0-or-later
"""Live-migrate an L2 guest between two QEMU processes in L1 (runs *in L1*, standard library only).

    python3 l2_migrate.py CONFIG.json

CONFIG names the two QEMU command lines (source, destination: the destination gets
``-incoming unix:MIG``), their console files and QMP sockets, and the console line after which to
migrate. The script starts the destination, then the source; when the source's console shows the
line it raises the bandwidth limit, migrates over the unix socket, waits for the migration to
complete, quits the source and waits for the guest to finish on the destination. It prints one JSON
document: QEMU's final query-migrate (status, downtime, total time, RAM statistics), the time the
migration started (in seconds since the source started) and the exit status of both QEMUs.
"""

import json
import os
import socket
import subprocess
import sys
import time


class Qmp:
    def __init__(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())                     # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            msg = json.loads(self.file.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")
            # events: ignored


def wait_for(path, text, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"QEMU exited ({proc.returncode}) before '{text}' appeared in {path}")
        try:
            with open(path, errors="replace") as fh:
                if text in fh.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"'{text}' did not appear in {path} within {timeout}s")


def main():
    cfg = json.load(open(sys.argv[1]))
    for f in (cfg["src_console"], cfg["dst_console"]):
        if os.path.exists(f):
            os.unlink(f)
    dst = subprocess.Popen(cfg["dst_cmd"], stdin=subprocess.DEVNULL, stdout=open(cfg["dst_console"], "w"),
                           stderr=subprocess.STDOUT)
    dst_qmp = Qmp(cfg["dst_qmp"])
    started = time.monotonic()
    src = subprocess.Popen(cfg["src_cmd"], stdin=subprocess.DEVNULL, stdout=open(cfg["src_console"], "w"),
                           stderr=subprocess.STDOUT)
    out = {}
    try:
        src_qmp = Qmp(cfg["src_qmp"])
        wait_for(cfg["src_console"], cfg["migrate_after"], src, cfg["timeout"])
        out["migration_started_s"] = round(time.monotonic() - started, 1)
        src_qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 30, "downtime-limit": 300})
        src_qmp.cmd("migrate", uri=f"unix:{cfg['migration_socket']}")
        deadline = time.monotonic() + cfg["timeout"]
        while True:
            info = src_qmp.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"migration not finished after {cfg['timeout']}s: {info}")
            time.sleep(0.5)
        out["migration"] = info
        out["dst_status"] = dst_qmp.cmd("query-status")
        src_qmp.cmd("quit")
        src.wait(60)
        dst.wait(cfg["timeout"])
    finally:
        for p in (src, dst):
            if p.poll() is None:
                p.kill()
                p.wait()
    out["src_rc"], out["dst_rc"] = src.returncode, dst.returncode
    print(json.dumps(out))


if __name__ == "__main__":
    main()
