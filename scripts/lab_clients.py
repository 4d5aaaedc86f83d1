"""What the lab's clients reported, for the scenario scripts in scripts/lab.d/.

scripts/lab-client.py writes one JSON object per connection to WORK/clients/NAME.jsonl; the
scenario scripts add per-connection facts from them to truth.json. They run their Python with
PYTHONPATH=$LAB_DIR and import this module.
"""

import json
import os


def client_rows(work):
    """Every connection a client reported, keyed by (client name, local port)."""
    rows = {}
    directory = os.path.join(work, "clients")
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(directory, name)) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows[(r["client"], r["localPort"])] = r
    return rows


def failure(error):
    """How a connection failed, from the client's error text: "refused", "timeout" or "other";
    None when there is no error."""
    if not error:
        return None
    if "refused" in error or "ConnectionRefused" in error:
        return "refused"
    if "timed out" in error or "Timeout" in error:
        return "timeout"
    return "other"
