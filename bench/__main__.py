"""Run every benchmark: ``python -m bench`` (``--no-http`` skips the round trips through a server)."""

from __future__ import annotations

import argparse

from bench import class_board, conv_lab, experiments, explain, model_tabs, training, units
from bench.common import machine


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--no-http", action="store_true", help="skip timings that start a local server")
    args = parser.parse_args()
    print(f"Machine: {machine()}", flush=True)
    print("\n## Convolution lab", flush=True)
    conv_lab.run(http=not args.no_http)
    print("\n## AlexNet inside (architecture, filters, activations, predictions, webcam)", flush=True)
    model_tabs.run()
    print("\n## Explain (Captum attributions, 224 x 224, alexnet)", flush=True)
    explain.run()
    print("\n## Fine-tuning", flush=True)
    training.run()
    print("\n## Units (feature visualisation, top patches, fc7 map; one torch thread, as in a worker)", flush=True)
    units.run()
    print("\n## Experiments (the lecture's ladder, the paper's ablations)", flush=True)
    experiments.run()
    print("\n## Class board (a class of forty; PostgreSQL too with PLAYGROUND_BENCH_DATABASE_URL)", flush=True)
    class_board.run()


if __name__ == "__main__":
    main()
