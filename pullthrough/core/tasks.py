"""Task states, as Pulp names them."""

TASK_STATES = ("waiting", "skipped", "running", "completed", "failed", "canceled", "canceling")
FINAL_TASK_STATES = ("completed", "failed", "canceled", "skipped")
RUNNING_TASK_STATES = ("running", "canceling")  # a worker has it
