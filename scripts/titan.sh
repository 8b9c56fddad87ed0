#!/usr/bin/env bash
# Titan's set-up, run, stop and test commands (called by the Makefile).
# Installs what is missing on a Debian 12 machine, saying what and why, then does the job.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# Where things are: read from titan.yaml (TITAN_SETTINGS) by the hub's own loader once .venv exists
# (load_settings_env); until then only dockerd's log needs a place.
STATE="$ROOT/state"
PUBLIC_URL=""

say()  { printf '[titan] %s\n' "$*"; }
die()  { printf '[titan] error: %s\n' "$*" >&2; exit 1; }
phase_start() { PHASE="$1"; PHASE_T0=$(date +%s); say "== $1"; }
phase_end()   { say "== $PHASE done in $(( $(date +%s) - PHASE_T0 )) s"; }

require_root() {
  if [ "$(id -u)" != 0 ]; then
    die "Titan's set-up installs system packages and starts the Docker engine, so it runs as root.
        Run: sudo make $1"
  fi
}

apt_install() {  # apt_install <package> <why>
  say "installing $1 ($2)"
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed; check the network and /etc/apt/sources.list"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1" >/dev/null \
    || die "could not install $1. Run: apt-get install $1"
}

ensure_system_packages() {
  command -v apt-get >/dev/null || die "this set-up needs Debian or Ubuntu (apt-get). Install Docker, Node.js, npm, git and mmdebstrap by hand, then run make up again."
  command -v dockerd >/dev/null || apt_install docker.io "the container engine that runs every user's server"
  command -v git >/dev/null || apt_install git "users' repositories and image recipes"
  command -v node >/dev/null || apt_install nodejs "runs configurable-http-proxy, the hub's front door"
  command -v npm >/dev/null || apt_install npm "installs configurable-http-proxy from its lock file"
  command -v mmdebstrap >/dev/null || apt_install mmdebstrap "builds the Debian base image with no registry"
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv "Titan's own virtual environment"
  command -v curl >/dev/null || apt_install curl "health checks"
}

docker_up() { docker info >/dev/null 2>&1; }

ensure_docker() {
  if docker_up; then return; fi
  say "starting dockerd (no Docker engine is running)"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl start docker || true
  fi
  if ! docker_up; then
    mkdir -p "$STATE"
    setsid dockerd >"$STATE/dockerd.log" 2>&1 < /dev/null &
  fi
  for _ in $(seq 60); do docker_up && return; sleep 0.5; done
  die "dockerd did not start; see $STATE/dockerd.log. Run: dockerd (as root) and look at what it prints"
}

ensure_venv() {
  local stamp="$VENV/.titan-installed" want
  want="$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -x "$PY" ]; then
    say "creating the virtual environment in .venv"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Titan and its Python dependencies into .venv"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
    "$PY" -c 'import spawner.docker, jupyterhub' || die "the Python install failed; see the lines above"
    echo "$want" > "$stamp"
  fi
}

ensure_proxy() {
  local stamp="node_modules/.titan-installed" want
  want="$(sha256sum package-lock.json | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x node_modules/.bin/configurable-http-proxy ]; then
    say "installing configurable-http-proxy from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed. Run: npm ci"
    echo "$want" > "$stamp"
  fi
}

ensure_images() { "$PY" -m images.build "$@"; }

prepare() {
  require_root "$1"
  phase_start "system packages"
  ensure_system_packages
  if [ "$1" = test ]; then
    command -v pdftotext >/dev/null || apt_install poppler-utils "the tests read exported PDFs with pdftotext"
    [ -x /usr/bin/chromium ] || apt_install chromium "the tests drive pages in a real headless browser"
    [ -x /usr/bin/chromedriver ] || apt_install chromium-driver "selenium drives chromium through it"
    # The Swarm tests: a registry on the test swarm's manager, homes served to its nodes over SFTP.
    command -v docker-registry >/dev/null || apt_install docker-registry "the Swarm tests' image registry"
    command -v sshfs >/dev/null || apt_install sshfs "the Swarm tests mount the shared homes on each node"
    [ -x /usr/sbin/sshd ] || apt_install openssh-server "the Swarm tests serve the shared homes over SFTP"
  fi
  phase_end
  phase_start "docker engine"; ensure_docker; phase_end
  phase_start "python environment"; ensure_venv; phase_end
  phase_start "proxy"; ensure_proxy; phase_end
  phase_start "images"; ensure_images; phase_end
}

# The deployment's URL, state directory and login mode, from titan.yaml through core.settings: the
# same file and loader as the hub, so every command talks about the same deployment.
load_settings_env() {
  local assignments
  assignments="$("$PY" -m titan.lifecycle env)" || die "titan.yaml is invalid (see above)"
  eval "$assignments"
  STATE="$TITAN_STATE"; PUBLIC_URL="$TITAN_PUBLIC_URL"
}

hub_running() { "$PY" -m titan.lifecycle status >/dev/null 2>&1; }

cmd_up() {
  prepare up
  load_settings_env
  if hub_running; then "$PY" -m titan.lifecycle status; return; fi
  phase_start "hub"
  mkdir -p "$STATE"
  # What a crashed hub of this deployment left (by its pid files), and ports something else holds.
  "$PY" -m titan.lifecycle cleanup || die "a port of this deployment is taken (see above)"
  say "starting the hub at $PUBLIC_URL (settings: $TITAN_SETTINGS_FILE, state: $STATE)"
  # Its own session, every standard stream redirected: nothing of ours (a pipe we print to) stays open.
  setsid "$VENV/bin/jupyterhub" -f "$ROOT/jupyterhub_config.py" >>"$STATE/jupyterhub.log" 2>&1 < /dev/null &
  local hub=$! waited=0
  for _ in $(seq 240); do
    if curl -fsS "$PUBLIC_URL/hub/api" >/dev/null 2>&1; then
      phase_end
      say "Titan is running at $PUBLIC_URL (log: $STATE/jupyterhub.log; stop: make down)"
      [ -n "$TITAN_DEV_LOGIN" ] && say "development login: no GitHub app is configured, so any user name signs in"
      say "automation token: $STATE/admin-token"
      return
    fi
    kill -0 "$hub" 2>/dev/null || { tail -20 "$STATE/jupyterhub.log" >&2; die "the hub exited; see $STATE/jupyterhub.log"; }
    sleep 0.5; waited=$((waited + 1))
    [ $((waited % 20)) = 0 ] && say "waiting for the hub to answer at $PUBLIC_URL ($((waited / 2)) s)"
  done
  tail -20 "$STATE/jupyterhub.log" >&2
  die "the hub did not answer at $PUBLIC_URL/hub/api within 120 s; see $STATE/jupyterhub.log"
}

# titan.lifecycle reads titan.yaml itself (one Python start, not two).
cmd_down() {
  [ -x "$PY" ] || { say "Titan is not installed here (no .venv): nothing runs"; return; }
  "$PY" -m titan.lifecycle down
}

cmd_status() {
  [ -x "$PY" ] || { say "not running (Titan is not installed here: no .venv)"; return; }
  "$PY" -m titan.lifecycle status || true  # "not running" is an answer, not a failure
}

cmd_test() {
  local t0; t0=$(date +%s)
  prepare test
  phase_start "ruff"; "$VENV/bin/ruff" check . ; phase_end
  phase_start "mypy"; "$VENV/bin/mypy"; phase_end
  phase_start "pytest"
  set +e
  "$PY" -m pytest "$@"
  local rc=$?
  set -e
  phase_end
  say "total $(( $(date +%s) - t0 )) s"
  return $rc
}

cmd_bench() {
  prepare bench
  case "${1:-spawn}" in
    sharing) shift
      command -v wrk >/dev/null || apt_install wrk "the HTTP load generator of the share-link benchmark"
      "$PY" -m bench.sharing "$@" ;;
    spawn) [ $# -gt 0 ] && shift; "$PY" -m bench.spawn "$@" ;;
    *) "$PY" -m bench.spawn "$@" ;;
  esac
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status ;;
  test) shift; cmd_test "$@" ;;
  packages) shift; require_root packages; ensure_system_packages ;;
  images) shift; require_root images; ensure_docker; ensure_venv; ensure_images "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  export-k8s) shift; ensure_venv; "$PY" -m kubernetes_export "$@" ;;
  *) echo "usage: $0 up|down|status|test|images|bench|packages|export-k8s" >&2; exit 2 ;;
esac
