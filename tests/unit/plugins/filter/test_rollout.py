# SPDX-License-Identifier: GPL-2.0-or-later
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.vhostblk.fleet.plugins.filter.rollout_plan import rollout_plan
from ansible_collections.vhostblk.fleet.plugins.filter.rollout_summary import rollout_summary


def test_idle_hosts_first_so_the_canary_is_never_busy():
    hv = {"a": {"__vhostblk_rollout_busy_left": True}, "b": {"__vhostblk_rollout_busy_left": False}, "c": {}}
    plan = rollout_plan(["a", "b", "c"], hv)
    assert plan == {"order": ["b", "c", "a"], "serial": ["1", "50%", "100%"], "max_fail_percentage": 0,
                    "busy": ["a"]}


def test_settings_come_from_the_hosts_variables():
    hv = {h: {"vhostblk_rollout_serial": [2, "30%"], "vhostblk_rollout_max_fail_percentage": "25"} for h in "ab"}
    plan = rollout_plan(["a", "b"], hv)
    assert plan["serial"] == ["2", "30%"] and plan["max_fail_percentage"] == 25
    assert rollout_plan(["a"], {"a": {"vhostblk_rollout_serial": 3}})["serial"] == ["3"]


@pytest.mark.parametrize("hv, words", [
    ({"a": {"vhostblk_rollout_serial": [1]}, "b": {"vhostblk_rollout_serial": [2]}},
     "vhostblk_rollout_serial differs between the hosts"),
    ({"a": {"vhostblk_rollout_serial": ["0"]}, "b": {"vhostblk_rollout_serial": ["0"]}}, "vhostblk_rollout_serial"),
    ({"a": {"vhostblk_rollout_serial": ["150%"]}, "b": {"vhostblk_rollout_serial": ["150%"]}}, "150%"),
    ({"a": {"vhostblk_rollout_serial": []}, "b": {"vhostblk_rollout_serial": []}}, "empty list"),
    ({"a": {"vhostblk_rollout_serial": True}, "b": {"vhostblk_rollout_serial": True}}, "not a batch size"),
    ({"a": {"vhostblk_rollout_max_fail_percentage": 101}, "b": {"vhostblk_rollout_max_fail_percentage": 101}},
     "vhostblk_rollout_max_fail_percentage"),
    ({"a": {"vhostblk_rollout_max_fail_percentage": "x"}, "b": {"vhostblk_rollout_max_fail_percentage": "x"}},
     "not a whole number"),
])
def test_bad_settings_fail_naming_the_variable(hv, words):
    with pytest.raises(AnsibleFilterError, match=words.replace("%", "%")):
        rollout_plan(["a", "b"], hv)


def test_summary_groups_hosts_by_result():
    hv = {"a": {"__vhostblk_rollout_status": "done"}, "b": {"__vhostblk_rollout_status": "pending"},
          "c": {}, "d": {"__vhostblk_rollout_status": "done"}}
    assert rollout_summary(["a", "b", "c", "d", "e"], hv) == {
        "done": ["a", "d"], "not attempted": ["b"], "unreachable": ["c", "e"]}
