# SPDX-License-Identifier: GPL-2.0-or-later


from ansible_collections.vhostblk.fleet.plugins.filter.kmod_params import kmod_options, kmod_param_drift


def test_options_sorted_with_booleans_as_sysfs_shows_them():
    assert kmod_options({"max_queues": 8, "busyloop_us": 0, "nowait": True, "trace": False}) == \
        "busyloop_us=0 max_queues=8 nowait=Y trace=N"
    assert kmod_options({}) == ""
    assert kmod_options(None) == ""


def test_drift_names_what_the_loaded_module_lacks_or_has_otherwise():
    loaded = {"max_queues": "8", "busyloop_us": "50", "nowait": "Y", "other": "1"}
    assert kmod_param_drift({"max_queues": 8, "nowait": True}, loaded) == []
    assert kmod_param_drift({"max_queues": 4, "busyloop_us": 50, "nowait": False}, loaded) == ["max_queues", "nowait"]
    # a parameter this module does not have (older module): drift, so the role reloads it
    assert kmod_param_drift({"slow_ops_per_device": 2}, loaded) == ["slow_ops_per_device"]
    assert kmod_param_drift({}, {}) == [] and kmod_param_drift(None, None) == []
