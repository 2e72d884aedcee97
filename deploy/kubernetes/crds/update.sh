#!/bin/sh
# Refresh the vendored CRDs, unchanged, from git clones of the operators' repositories at
# the release tags below (README.md says which and why). Then run
# tests/integration/test_kubernetes_manifests.py and update README.md's table (the sums
# this prints).
# usage: deploy/kubernetes/crds/update.sh CLOUDNATIVE_PG_CLONE RABBITMQ_OPERATOR_CLONE PROMETHEUS_OPERATOR_CLONE
set -eu
CNPG_TAG=v1.30.0
RABBITMQ_TAG=v2.22.3
PROMETHEUS_TAG=v0.93.0
here=$(dirname "$0")
take() { git -C "$1" show "$2:$3" > "$here/$(basename "$3")"; }
take "$1" "$CNPG_TAG" config/crd/bases/postgresql.cnpg.io_clusters.yaml
take "$1" "$CNPG_TAG" config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml
take "$2" "$RABBITMQ_TAG" config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml
take "$3" "$PROMETHEUS_TAG" example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
take "$3" "$PROMETHEUS_TAG" example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml
cd "$here" && sha256sum ./*.yaml
