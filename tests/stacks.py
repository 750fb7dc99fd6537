"""Small swarm stacks the tests share: a stateless api with two replicas behind an nginx front
that resolves it through Swarm's DNS (sandbox/nginx/front-swarm.conf.template)."""

from __future__ import annotations

import yaml

API_AND_FRONT = """
x-opskit:
  state_dir: {state}
  swarm: {{publish: host, endpoint_mode: dnsrr}}
services:
  api:
    image: opskit-sandbox:latest
    command: ["python3", "-m", "sandbox.upstream"]
    working_dir: /app
    environment: {{HOST: 0.0.0.0, PORT: "8787"}}
    ports: ["8787"]
    healthcheck:
      test: ["CMD", "python3", "-m", "sandbox.probe", "http://127.0.0.1:8787/health"]
      interval: 1s
      timeout: 2s
      retries: 20
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, delay: 1s, order: start-first}}
    x-opskit: {{role: backend, ready_path: /health, start_timeout: 40s}}
  front:
    image: opskit-sandbox:latest
    command: ["python3", "-m", "sandbox.render", "sandbox/nginx/front-swarm.conf.template",
              "/etc/nginx/nginx.conf", "--", "nginx", "-g", "daemon off;"]
    working_dir: /app
    stop_signal: SIGQUIT
    environment: {{FRONT_LISTEN: "{port}", BACKEND_UPSTREAM: "api:8787"}}
    ports: ["{port}:{port}"]
    depends_on: [api]
    x-opskit: {{role: nginx, health_path: /health, start_timeout: 30s}}
"""


def api_spread_over_workers(state, port: int, api_port: int) -> str:
    """API_AND_FRONT for a cluster: the api's two tasks on two different workers, each
    publishing ``api_port`` on its node (how opskit, on none of the nodes, probes them), the
    front on the manager."""
    document = yaml.safe_load(API_AND_FRONT.format(state=state, port=port))
    api, front = document["services"]["api"], document["services"]["front"]
    api["ports"] = [f"{api_port}:8787"]
    api["stop_grace_period"] = "10s"
    api["deploy"] = {
        "replicas": 2,
        "placement": {"constraints": ["node.role == worker"], "max_replicas_per_node": 1},
    }
    api["x-opskit"]["start_timeout"] = "60s"
    front["deploy"] = {"placement": {"constraints": ["node.role == manager"]}}
    return yaml.safe_dump(document)
