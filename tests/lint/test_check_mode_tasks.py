# SPDX-License-Identifier: GPL-2.0-or-later
"""Check mode skips command and shell tasks (issue 13 item 5): a read-only one (changed_when: false)
whose result is registered must run in check mode too (check_mode: false), or be left out of it
explicitly (a `when` on ansible_check_mode or a check-mode fact), or a later task parses a result
that has no stdout."""

from pathlib import Path

import pytest
import yaml
from vmharness.paths import REPO_ROOT

COMMANDS = {"ansible.builtin.command", "ansible.builtin.shell", "command", "shell"}
INCLUDES = {"ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_tasks", "import_tasks"}
TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")
# every task file and playbook that ansible-playbook --check runs: the roles, the playbooks (and the task
# files they include: the drain hook), the molecule playbooks whose converge the verify tests run again in check mode
FILES = sorted([*REPO_ROOT.glob("roles/*/tasks/*.yml"), *REPO_ROOT.glob("roles/*/handlers/*.yml"),
                *REPO_ROOT.glob("playbooks/*.yml"), *REPO_ROOT.glob("playbooks/tasks/*.yml"),
                *REPO_ROOT.glob("molecule/*/converge.yml")])


def _guarded(task):
    """Whether a task's (or block's) `when` leaves it out of check mode (or to a check-mode fact)."""
    when = task.get("when", [])
    conditions = when if isinstance(when, list) else [when]
    return any("check_mode" in str(c) or "check_pending" in str(c) or "check_load" in str(c) for c in conditions)


def _tasks(items, guarded=False):
    """(task, guarded) for every task in a list of plays or tasks; a block's guard covers its tasks."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        inner = guarded or _guarded(item)
        nested = [key for key in TASK_LISTS if key in item]
        if not nested:
            yield item, inner
        for key in nested:
            yield from _tasks(item[key], inner)


def _includes(path):
    """(included file, guarded) for each include_tasks/import_tasks of a static file name in PATH."""
    for task, guarded in _tasks(yaml.safe_load(Path(path).read_text())):
        module = next((key for key in task if key in INCLUDES), None)
        name = task.get(module) if module else None
        name = name.get("file") if isinstance(name, dict) else name
        if isinstance(name, str) and "{{" not in name:
            yield Path(path).parent / name, guarded


def guarded_files(paths):
    """Task files reached only through includes that check mode leaves out (so all their tasks are)."""
    edges = [(path, inc, guarded) for path in paths for inc, guarded in _includes(path)]
    guarded_set, grew = set(), True
    while grew:
        grew = False
        for path in paths:
            incoming = [(src, guarded) for src, inc, guarded in edges if inc == path]
            if path not in guarded_set and incoming and all(g or src in guarded_set for src, g in incoming):
                guarded_set.add(path)
                grew = True
    return guarded_set


def unguarded_read_only_commands(path, file_guarded=False):
    """Names of read-only command/shell tasks in PATH that register a result and are skipped in check mode."""
    found = []
    for task, guarded in _tasks(yaml.safe_load(Path(path).read_text()), file_guarded):
        module = next((key for key in task if key in COMMANDS), None)
        if module is None or "register" not in task or task.get("changed_when") is not False:
            continue
        if task.get("check_mode") is False or guarded:
            continue
        args = task[module] if isinstance(task[module], dict) else {}
        if "creates" in args or "removes" in args:  # the command module itself runs these in check mode
            continue
        found.append(task.get("name", "(unnamed)"))
    return found


GUARDED = guarded_files(FILES)


def test_the_rule_finds_an_unguarded_read(tmp_path):
    """The rule itself: a read skipped in check mode is found, the same read with check_mode: false
    or a check-mode guard is not (inside a block too)."""
    bad = tmp_path / "bad.yml"
    bad.write_text("- name: Outer\n  block:\n    - name: Read\n      ansible.builtin.command: dkms status\n"
                   "      register: r\n      changed_when: false\n")
    assert unguarded_read_only_commands(bad) == ["Read"]
    good = tmp_path / "good.yml"
    good.write_text("- name: Read\n  ansible.builtin.command: dkms status\n  register: r\n  changed_when: false\n"
                    "  check_mode: false\n- name: Run\n  ansible.builtin.command: selftest\n  register: s\n"
                    "  changed_when: false\n  when: not ansible_check_mode\n")
    assert unguarded_read_only_commands(good) == []
    main = tmp_path / "main.yml"
    main.write_text("- name: Real run only\n  when: not ansible_check_mode\n  block:\n"
                    "    - name: Include\n      ansible.builtin.include_tasks: bad.yml\n")
    assert guarded_files([main, bad, good]) == {bad}
    main.write_text(main.read_text() + "- name: Also in check mode\n  ansible.builtin.include_tasks: bad.yml\n")
    assert guarded_files([main, bad, good]) == set()


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(REPO_ROOT)) for f in FILES])
def test_read_only_commands_run_in_check_mode(path):
    assert unguarded_read_only_commands(path, path in GUARDED) == [], \
        f"{path.relative_to(REPO_ROOT)}: add check_mode: false (read-only) or a when on ansible_check_mode"
