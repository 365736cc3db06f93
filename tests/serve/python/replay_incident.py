"""Replays the incident over the wire: a trace of sends (`t_ms kind source` lines, source `job`
for the runaway and `ordinary` for the traffic around it, sorted by time) against a server on a
manual clock. Each step of STEP_MS is one ShouldRateLimit call with one descriptor per send, in
order, as a queue consumer asks about the batch it pulled: a send goes out if its descriptor's
code is OK. The clock is moved by the admin route before each step. Prints what got through, as
JSON.

    python replay_incident.py GRPC_ADDR HTTP_ADDR TRACE RUNAWAY_KIND
"""

import json
import sys

import sidecar

STEP_MS = 5000


def main(grpc_address, http_address, trace, runaway):
    stub = sidecar.rls(grpc_address)
    admin = sidecar.Http(http_address)
    tally = {"let_through": 0, "handed_back": 0, "others_sent": 0, "others_blocked": 0, "sends": 0, "calls": 0}

    def flush(step):
        if not step:
            return
        admin.set_clock(step[0][0])
        response = stub.ShouldRateLimit(sidecar.batch([kind for _, kind, _ in step]))
        tally["calls"] += 1
        for (_, kind, source), status in zip(step, response.statuses, strict=True):
            ok = status.code == sidecar.OK
            tally["sends"] += 1
            if source == "job":
                tally["let_through" if ok else "handed_back"] += 1
            elif kind != runaway:  # the tripped kind's genuine notices are held back too
                tally["others_sent" if ok else "others_blocked"] += 1

    step = []
    with open(trace) as lines:
        for line in lines:
            t, kind, source = line.split()
            t = int(t)
            if step and t - step[0][0] >= STEP_MS:
                flush(step)
                step = []
            step.append((t, kind, source))
    flush(step)
    print(json.dumps(tally))


if __name__ == "__main__":
    main(*sys.argv[1:])
