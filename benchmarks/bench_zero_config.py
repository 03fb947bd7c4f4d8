"""Exit delay of a decorated program with nothing configured and no server running, measured in one run.

The delay is the time from the program's last line to its exit (atexit flushes the spans). Three
programs run in fresh interpreters: the same program undecorated (the baseline), decorated with
nothing configured (tracemill's zero-config exporter: one POST attempt, then the outbox), and
decorated with the OTLP exporter pointed at the same empty port (what zero config did before:
the OTel exporter retries, then drops the spans).

Run: python benchmarks/bench_zero_config.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROGRAM = """
import sys
{imports}
{decorator}
def agent(question):
    return question.upper()

for _ in range(20):
    agent("hello")
print("END", flush=True)
"""


def exit_delay(source: str, env: dict[str, str]) -> float:
    with subprocess.Popen([sys.executable, "-c", source], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "END"
        ended = time.monotonic()
        proc.wait(60)
        return time.monotonic() - ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with tempfile.TemporaryDirectory() as data:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEMILL_", "OTEL_"))}
        env = {**base, "TRACEMILL_DATA_DIR": data, "TRACEMILL_PORT": str(port)}
        plain = PROGRAM.format(imports="", decorator="")
        traced = PROGRAM.format(imports="import tracemill", decorator="@tracemill.agent")
        baseline = [exit_delay(plain, env) for _ in range(args.runs)]
        zero = [exit_delay(traced, env) for _ in range(args.runs)]
        files = len([n for n in os.listdir(os.path.join(data, "outbox")) if n.endswith(".otlp.pb")])
        otlp_env = {**env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces"}
        otlp = exit_delay(traced, otlp_env)
    b, z = statistics.median(baseline), statistics.median(zero)
    print(f"exit delay, median of {args.runs}: undecorated {b * 1000:.1f} ms, zero-config {z * 1000:.1f} ms "
          f"(+{(z - b) * 1000:.1f} ms, {z / b:.2f}x); {files} outbox files for {args.runs} runs")
    print(f"the OTLP exporter on the same empty port (one run): {otlp * 1000:.0f} ms, spans dropped")


if __name__ == "__main__":
    main()
