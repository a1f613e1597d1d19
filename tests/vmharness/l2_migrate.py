# SPDX-License-Identifier: GPL-2.0-or-later
"""Live-migrate an L2 guest between QEMU processes in L1 (runs *in L1*, standard library only).

    python3 l2_migrate.py CONFIG.json

CONFIG names the source QEMU command line, its console file and QMP socket, and a list of
migration attempts, tried in order. Each attempt names the console line after which it starts, a
destination QEMU (command line with ``-incoming unix:MIG``, console file, QMP socket, migration
socket) and optional shell commands: ``before`` (run to completion before the destination starts),
``during`` (started in the background when the migration starts, waited for after it ends) and
``at_end`` (run when the migration has ended, before the source quits). A destination that exits
before it answers on QMP is recorded as such and the source is still asked to migrate to it (the
source must refuse and go on). A failed attempt leaves the guest on the source; a completed one
moves it to the destination, which must be the last attempt. The script then waits for the guest to
finish wherever it runs and prints one JSON document: per attempt QEMU's final query-migrate
(status, downtime, total time, RAM statistics) or the error, the source's run state afterwards, the
outputs of the shell commands and the destination's exit status; and the exit status of the QEMU
that ran the guest to its end.
"""

import json
import os
import socket
import subprocess
import sys
import time


class Exited(RuntimeError):
    """The QEMU process ended before it answered on QMP."""


class Qmp:
    def __init__(self, path, proc, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise Exited(f"QEMU exited ({proc.returncode}) before it answered on {path}")
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
        try:
            json.loads(self.file.readline())                 # greeting
            self.cmd("qmp_capabilities")
        except (OSError, ValueError):
            # the monitor is up before the devices: a device that fails to realize ends QEMU here
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"QEMU's monitor on {path} closed, QEMU still runs") from None
            raise Exited(f"QEMU exited ({proc.returncode}) during start-up, its monitor on {path} closed") from None

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


def start_qemu(argv, console):
    if os.path.exists(console):
        os.unlink(console)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(console, "w"), stderr=subprocess.STDOUT)


def shell(command, timeout):
    res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False)
    return f"{res.stdout}{res.stderr}(rc={res.returncode})"


def migrate(src_qmp, uri, timeout):
    """Start a migration and wait for its end: QEMU's last query-migrate, or the error of the command."""
    try:
        src_qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 30, "downtime-limit": 300})
        src_qmp.cmd("migrate", uri=uri)
    except RuntimeError as e:
        return {"status": "refused", "error": str(e)}
    deadline = time.monotonic() + timeout
    while True:
        info = src_qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if time.monotonic() > deadline:
            raise RuntimeError(f"migration not finished after {timeout}s: {info}")
        time.sleep(0.5)


def attempt(cfg, a, src, src_qmp, started):
    """One migration attempt; returns (record, destination process or None when it failed)."""
    rec = {"name": a["name"]}
    wait_for(cfg["src_console"], a["after"], src, cfg["timeout"])
    if a.get("before"):
        rec["before"] = shell(a["before"], cfg["timeout"])
    dst = start_qemu(a["dst_cmd"], a["dst_console"])
    try:
        dst_qmp = Qmp(a["dst_qmp"], dst)
    except Exited as e:
        dst_qmp = None
        rec["dst_exited"] = str(e)
    during = subprocess.Popen(["sh", "-c", a["during"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) if a.get("during") else None
    rec["migration_started_s"] = round(time.monotonic() - started, 1)
    rec["migration"] = migrate(src_qmp, f"unix:{a['migration_socket']}", cfg["timeout"])
    if during:
        rec["during"] = during.communicate(timeout=cfg["timeout"])[0]
    if a.get("at_end"):
        rec["at_end"] = shell(a["at_end"], cfg["timeout"])
    rec["src_status"] = src_qmp.cmd("query-status")["status"]
    if rec["migration"].get("status") == "completed":
        rec["dst_status"] = dst_qmp.cmd("query-status")["status"]
        return rec, dst
    if dst.poll() is None:
        dst.kill()
    rec["dst_rc"] = dst.wait()
    return rec, None


def main():
    cfg = json.load(open(sys.argv[1]))
    src = start_qemu(cfg["src_cmd"], cfg["src_console"])
    started = time.monotonic()
    procs, out = [src], {"attempts": []}
    try:
        src_qmp = Qmp(cfg["src_qmp"], src)
        guest = src
        for i, a in enumerate(cfg["attempts"]):
            rec, dst = attempt(cfg, a, src, src_qmp, started)
            out["attempts"].append(rec)
            if dst is not None:
                procs.append(dst)
                if i != len(cfg["attempts"]) - 1:
                    raise RuntimeError(f"attempt {a['name']} moved the guest: it must be the last one")
                src_qmp.cmd("quit")
                src.wait(60)
                guest = dst
        guest.wait(cfg["timeout"])
        out["guest_rc"] = guest.returncode
        out["src_rc"] = src.returncode
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
