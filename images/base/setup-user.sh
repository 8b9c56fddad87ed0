#!/bin/sh
# Runs inside the new root (mmdebstrap customize hook): the notebook user and lean-up.
set -eu
useradd --create-home --uid 1000 --user-group --shell /bin/bash jovyan
# The home volume is mounted here; an empty named volume is seeded from this directory.
chmod 0755 /home/jovyan
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* /usr/share/info/*
