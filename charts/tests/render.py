#!/usr/bin/env python3
"""Renders charts/dr-restore with the Helm library (PyPI helm-python-sdk), as `helm install`
would, for the tests: values (JSON) on stdin, or value files and --set expressions as args.

    render.py NAMESPACE RELEASE [-f values.yaml ...] [--set k=v ...] [--set-json k=json ...] < values.json

Prints {"manifests": [objects...], "notes": "..."} as JSON. A schema or template error is
printed on stderr with exit status 1.
"""
import json
import os
import sys

import yaml  # PyYAML comes with moto

import helm_python as helm
from helm_python.chart import Chart

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dr-restore")


def deep_merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def values_from_args(args):
    values = {}
    i = 0
    while i < len(args):
        flag, arg = args[i], args[i + 1]
        if flag == "-f":
            with open(os.path.join(CHART, arg) if not os.path.isabs(arg) else arg) as f:
                deep_merge(values, yaml.safe_load(f) or {})
        elif flag == "--set":
            deep_merge(values, helm.parse_set_string(arg))
        elif flag == "--set-json":
            deep_merge(values, helm.parse_set_json(arg))
        else:
            raise SystemExit(f"unknown flag {flag}")
        i += 2
    return values


def render(namespace, release, values):
    chart = Chart.load(CHART)
    chart.validate_schema(values)
    rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    manifests, notes = [], ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(doc)
    return {"manifests": manifests, "notes": notes}


def main():
    namespace, release, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    values = values_from_args(rest) if rest else json.load(sys.stdin)
    try:
        out = render(namespace, release, values)
    except helm.HelmError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
