# For running gunicorn directly: `gunicorn -c deploy/gunicorn.conf.py`.
# `pullthrough serve` uses the same settings (python:pullthrough.gunicorn_conf).
from pullthrough.gunicorn_conf import *  # noqa: F403
