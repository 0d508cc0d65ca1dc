"""GPU check of chapter 02: the students trained at once with ``torch.func.vmap`` on the
device give the test errors they give on the CPU, and how many students a second fit.

Run with every other chapter's check by ``make gpu-check``, or alone:

    python -m reprobook.gpucheck --only qqt           # about 35 s on an H200
    python -m reprobook.gpucheck --only qqt --smoke   # toy size on the CPU

1. correctness: 8 students (two pools, four seeds), 100 steps: test errors of the vmap
   training on the device against the same training on the CPU, and against the
   students trained one by one with plain autograd on the device (an independent
   computation); float32 on both sides, so an error may differ by a prediction or two;
2. time of 500 steps for 64, 256 and 1024 students at once on the device (as many as the
   budget allows).

Saved to results/qqt/gpu.json, which chapter 02 shows.
"""

from __future__ import annotations

import time

import numpy as np

from reprobook.gpucheck import synchronize
from reprobook.qqt.study import make_web_pool, train_students

TOLERANCE = 0.01  # test-error difference allowed between devices: 1% of the test set (float32 argmax flips)


def gpu_check(device: str, smoke: bool, deadline) -> dict:
    web = make_web_pool(2_000 if smoke else 20_000, 4, np.random.default_rng(0))
    batch = 32
    pools = [web.buckets[0], web.buckets[3]]
    ck = np.array([20 * batch, 100 * batch]) if not smoke else np.array([10 * batch])

    def errors(dev, vectorized):
        return train_students(web, pools, ck, 4, np.random.default_rng(1), batch=batch, device=dev,
                              vectorized=vectorized)

    on_cpu, on_device, loop_device = errors("cpu", True), errors(device, True), errors(device, False)
    diff_cpu = float(np.abs(on_device - on_cpu).max())
    diff_loop = float(np.abs(on_device - loop_device).max())
    print(f"test errors: device vs CPU {diff_cpu:.4f}, vmap vs one by one {diff_loop:.4f}", flush=True)

    steps = 20 if smoke else 500
    timings, cut = [], []
    for S in ([4, 16] if smoke else [64, 256, 1024]):
        if not deadline.allows(0.3):
            cut.append(S)
            continue
        students = [web.buckets[i % 4] for i in range(S)]
        synchronize(device)
        start = time.perf_counter()
        train_students(web, students, np.array([steps * batch]), 1, np.random.default_rng(2), batch=batch,
                       device=device)
        synchronize(device)
        seconds = time.perf_counter() - start
        timings.append({"students": S, "steps": steps, "seconds": seconds, "student_steps_per_s": S * steps / seconds})
        print(timings[-1], flush=True)
    passed = diff_cpu <= TOLERANCE and diff_loop <= TOLERANCE
    figure = f"test errors equal to the CPU's within {diff_cpu:.3f}"
    if timings:
        figure += f"; {timings[-1]['student_steps_per_s']:,.0f} student-steps/s at {timings[-1]['students']} students"
    return {"passed": passed, "key_figure": figure, "tolerance": TOLERANCE, "max_error_diff_vs_cpu": diff_cpu,
            "max_error_diff_vs_one_by_one": diff_loop, "timings": timings, "cut_students": cut}
