# For running gunicorn directly: `gunicorn -c deploy/gunicorn.conf.py`.
# `pullthrough serve` uses the same settings (python:proxy.gunicorn_conf).
from proxy.gunicorn_conf import *  # noqa: F403
