"""Every label docker-swap reads or writes, in one place: compose's and Swarm's (what tells a
service's containers and tasks apart), and docker-swap's own (its lock, journal, release
records, bridges and jobs on the engine)."""

from __future__ import annotations

# Compose's, on the containers it makes.
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"
COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
COMPOSE_CONFIG_HASH = "com.docker.compose.config-hash"

# Swarm's, on a stack's services and on their tasks' containers.
STACK_NAMESPACE = "com.docker.stack.namespace"
SWARM_SERVICE_NAME = "com.docker.swarm.service.name"
SWARM_TASK_ID = "com.docker.swarm.task.id"

# docker-swap's own.
FOR = "docker-swap.for"
"""PROJECT/SERVICE: which service a marker or journal record belongs to."""
PROJECT = "docker-swap.project"
KIND = "docker-swap.kind"
"""`lock`, `journal` or `marker`."""
HOLDER = "docker-swap.holder."
"""The prefix of the lock holder's labels (user, host, pid...)."""
SEQUENCE = "docker-swap.sequence"
ENTRY = "docker-swap.entry"
WRITER = "docker-swap.writer"
RELEASE = "docker-swap.release"
"""The prefix of a release record's labels (.project, .service, .number, .record)."""
BRIDGE_FOR = "docker-swap.bridge-for"
"""On a bridge: the stack service whose traffic it carries."""
JOB = "docker-swap.job"
"""On a stack's one-off job: the stack."""
