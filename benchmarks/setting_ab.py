"""One bench row with and without a process setting (an environment
variable), interleaved A B A B in fresh processes: how a default earns its
place (docs/benchmarks.md, "Where each backend loses time").

    python benchmarks/setting_ab.py --backend torch --setting PORTACLASS_TORCH_LEAN_CONV=0 --batch-sizes 32,128
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from portaclass.backend_process import interleaved_rounds

MEASURE = str(Path(__file__).resolve().parents[1] / "src" / "portaclass" / "bench" / "measure.py")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--setting", required=True, help="NAME=VALUE, the changed run")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    name, value = args.setting.split("=", 1)
    print(f"| batch | default s/step | {args.setting} s/step | ratio | default peak GB | changed peak GB |")
    print("| ---: | --- | --- | ---: | ---: | ---: |")
    for batch in map(int, args.batch_sizes.split(",")):
        job = {"row": args.backend, "model": args.model, "image_size": args.image_size, "batch_size": batch,
               "steps": args.steps, "num_classes": 10, "seed": 0, "device": None}
        jobs = {"default": ([json.dumps(job)], args.backend, {"PORTACLASS_JAX_CACHE": "0"}),
                "changed": ([json.dumps(job)], args.backend, {"PORTACLASS_JAX_CACHE": "0", name: value})}
        results = interleaved_rounds(MEASURE, [], jobs, args.rounds, report=lambda line: None)
        steps = {k: [r["step_time_s"] for r in v] for k, v in results.items()}
        peaks = {k: max(r["peak_memory_bytes"] for r in v) / 1e9 for k, v in results.items()}
        print(f"| {batch} | {', '.join(f'{s:.3f}' for s in steps['default'])} | "
              f"{', '.join(f'{s:.3f}' for s in steps['changed'])} | "
              f"{statistics.median(steps['changed']) / statistics.median(steps['default']):.2f} | "
              f"{peaks['default']:.2f} | {peaks['changed']:.2f} |")


if __name__ == "__main__":
    main()
