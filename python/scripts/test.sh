#!/usr/bin/env bash
# Placeholder until the python suite lands.
echo "python suite: not yet"
