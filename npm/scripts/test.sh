#!/usr/bin/env bash
# Placeholder until the npm suite lands.
echo "npm suite: not yet"
