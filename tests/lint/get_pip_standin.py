# Stand-in for ansible-test's get-pip bootstrap (ci-files.testing.ansible.com is unreachable here):
# seed pip from the interpreter's ensurepip, then let it install what get-pip was asked for (from PyPI).
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')   # get-pip.py options pip install does not know

ensurepip.bootstrap()
os.environ.pop('PIP_CONFIG_FILE', None)   # ensurepip sets it to /dev/null, which hides /etc/pip.conf
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args))
