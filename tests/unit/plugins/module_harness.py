# SPDX-License-Identifier: GPL-2.0-or-later
"""Run an Ansible module's main() in-process and catch its result."""


import json
import os

from ansible.module_utils import basic
from ansible.module_utils.common import warnings
from ansible.module_utils.common.text.converters import to_bytes

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__('exit_json')
        self.result = result


class ModuleFail(Exception):
    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    kwargs.setdefault('changed', False)
    if warnings.get_warning_messages():
        kwargs['warnings'] = list(warnings.get_warning_messages())
    raise ModuleExit(kwargs)


def _fail_json(self, msg, **kwargs):  # pylint: disable=unused-argument
    kwargs['msg'] = msg
    kwargs['failed'] = True
    raise ModuleFail(kwargs)


def run(monkeypatch, main, args, check_mode=False, diff=False):
    """Run ``main`` with ``args``; return the result dict (fail -> ModuleFail)."""
    args = dict(args)
    args.update({'_ansible_check_mode': check_mode, '_ansible_diff': diff,
                 '_ansible_remote_tmp': '/tmp', '_ansible_keep_remote_files': False})
    monkeypatch.setattr(warnings, '_global_warnings', [])
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args})))
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
    try:
        main()
    except ModuleExit as exc:
        return exc.result
    raise AssertionError('module returned without exit_json')


def fixture(name, images):
    """Fixture XML text with @IMAGES@ replaced by ``images``."""
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read().replace('@IMAGES@', str(images))
