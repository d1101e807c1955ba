# The docker-swap agent's image, built from a checkout of docker-swap:
#   docker build -f examples/swarm/agent.Dockerfile -t registry.example.com/docker-swap .
# then push it where every node that runs a proxy can pull it.
FROM python:3.12-slim
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
ENTRYPOINT ["docker-swap"]
