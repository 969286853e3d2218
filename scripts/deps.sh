#!/bin/sh
# Installs what building and testing zerohttp needs on Debian 12, if missing.
# As root it runs apt-get; otherwise it prints the exact command and stops.
set -eu
need=""
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
pkg-config --exists criterion 2>/dev/null || need="$need libcriterion-dev"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v strace >/dev/null 2>&1 || need="$need strace"
# wrk drives the normal load beside the slowloris dribblers (tests/integration/test_27_load.py)
command -v wrk >/dev/null 2>&1 || need="$need wrk"
pkg-config --exists libprotobuf-c 2>/dev/null || need="$need libprotobuf-c-dev"
pkg-config --exists zlib 2>/dev/null || need="$need zlib1g-dev"
# crypt_rn for the auth middleware; libc6-dev depends on it on Debian 12, so normally present
pkg-config --exists libcrypt 2>/dev/null || need="$need libcrypt-dev"
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
