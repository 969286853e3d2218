#!/bin/sh
# Installs what building and testing zerohttp needs on Debian 12, if missing.
# As root it runs apt-get; otherwise it prints the exact command and stops. With the argument
# "deploy", also what make test-deploy needs.
set -eu
need=""
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
pkg-config --exists criterion 2>/dev/null || need="$need libcriterion-dev"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v curl >/dev/null 2>&1 || need="$need curl"
# Python's requests drives multipart uploads in tests/integration/test_33_reading.py
/usr/bin/python3 -c 'import requests' >/dev/null 2>&1 || need="$need python3-requests"
command -v strace >/dev/null 2>&1 || need="$need strace"
# wrk drives the normal load beside the slowloris dribblers (tests/integration/test_27_load.py)
command -v wrk >/dev/null 2>&1 || need="$need wrk"
pkg-config --exists libprotobuf-c 2>/dev/null || need="$need libprotobuf-c-dev"
pkg-config --exists zlib 2>/dev/null || need="$need zlib1g-dev"
# liburing for the io_uring backend (src/loop_uring.c; linked statically, see the Makefile)
[ -f /usr/include/liburing.h ] || need="$need liburing-dev"
# crypt_rn for the auth middleware; libc6-dev depends on it on Debian 12, so normally present
pkg-config --exists libcrypt 2>/dev/null || need="$need libcrypt-dev"
# OpenSSL 3 for libzerohttp-tls; the openssl CLI makes the TLS tests' certificates
pkg-config --exists libssl libcrypto 2>/dev/null || need="$need libssl-dev"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v protoc-c >/dev/null 2>&1 || need="$need protobuf-c-compiler"
# HTTP/2 (libzerohttp-h2) and its tests: h2load and nghttp as clients, Python's h2 for
# frame-level cases (tests/integration/test_35_http2.py, run with /usr/bin/python3)
pkg-config --exists libnghttp2 2>/dev/null || need="$need libnghttp2-dev"
{ command -v h2load && command -v nghttp; } >/dev/null 2>&1 || need="$need nghttp2-client"
/usr/bin/python3 -c 'import h2' >/dev/null 2>&1 || need="$need python3-h2"
# gRPC's Python client for the demo gRPC service (test_35_http2.py)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need="$need python3-grpcio"
command -v protoc >/dev/null 2>&1 || need="$need protobuf-compiler"
# promtool + prometheus for tests/integration/test_25_deploy.py, which runs its own server on
# a free loopback port: the package's service (:9090) is never used, and in a container
# without an init its postinst does not start it
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need="$need prometheus"
# groff formats zerohttpd(8) in tests/integration/test_40_config.py (minbase has no man-db)
command -v groff >/dev/null 2>&1 || need="$need groff-base"
# systemd-analyze and systemd-socket-activate for tests/integration/test_41_systemd.py (the
# package's service manager is not started by the tests)
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
# /bin/kill, the unit's ExecReload: systemd-analyze verify checks that it exists (minbase
# has no procps)
[ -x /bin/kill ] || need="$need procps"
# jansson: the reference parser of tests/fuzz/fuzz_json_read.c and what make bench-json-read
# measures the JSON reader against
pkg-config --exists jansson 2>/dev/null || need="$need libjansson-dev"
# `scripts/deps.sh deploy`, for make test-deploy (tests/deploy/): HAProxy in front of three
# instances; python3-yaml (for /usr/bin/python3) parses the Kubernetes manifests; podman
# builds and runs the container image, with runc (crun refuses this kind of machine's
# hybrid cgroup layout)
if [ "${1:-}" = deploy ]; then
	command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need="$need haproxy"
	/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need="$need python3-yaml"
	command -v podman >/dev/null 2>&1 || need="$need podman"
	command -v runc >/dev/null 2>&1 || need="$need runc"
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "zerohttp needs:$need" >&2
	echo "run: sudo apt-get install -y$need" >&2
	exit 1
fi
echo "zerohttp: installing$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need >/dev/null
