#!/bin/sh
# Prometheus's entrypoint in this stack: records how many model replicas are meant to run, then
# starts Prometheus with the arguments it was given (docker-compose.yml's `command:`).
#
# ModelReplicaDown compares the replicas that answer with this number. Service discovery alone
# cannot tell a replica that died from one removed on purpose: both simply vanish from DNS. The
# number of replicas meant to run is MODEL_REPLICAS, the same variable that sets the model
# service's replicas (Compose `deploy.replicas`, Swarm's service spec), so scaling by changing it
# (README, "Scaling") keeps both in step. Prometheus reads no environment in its rules: the value
# is written into a recording rule on a tmpfs, which rule_files in prometheus.yml includes.
set -eu

case "${MODEL_REPLICAS:-}" in
  '' | *[!0-9]*)
    echo "entrypoint.sh: MODEL_REPLICAS must be a whole number of replicas, got '${MODEL_REPLICAS:-}'" >&2
    exit 2
    ;;
esac

mkdir -p /tmp/rules
printf '%s\n' \
  '# Written at start by /etc/prometheus/entrypoint.sh from MODEL_REPLICAS.' \
  'groups:' \
  '  - name: model-serving-deployment' \
  '    rules:' \
  '      - record: model_serving:replicas_desired' \
  "        expr: vector(${MODEL_REPLICAS})" \
  > /tmp/rules/deployment.yml

exec /bin/prometheus "$@"
