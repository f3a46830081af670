"""Baseline for POST throughput: the default simulation (test_sim:run_network, details
included) in a bare process pool, as fast as it goes.

python -m bench.direct_pool WORKERS SECONDS  -> prints runs per second.
"""

import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from powersim import worker


def main(workers: int, seconds: float) -> float:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=worker.init, initargs=("test_sim:run_network", "WARNING")
    ) as pool:
        for future in [pool.submit(worker.run) for _ in range(workers * 2)]:  # warm: imports and a first run
            future.result()
        pending = {pool.submit(worker.run) for _ in range(workers * 2)}
        done_count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            done_count += len(done)
            pending |= {pool.submit(worker.run) for _ in done}
        elapsed = time.perf_counter() - start
        for future in pending:
            future.cancel()
    return done_count / elapsed


if __name__ == "__main__":
    print(main(int(sys.argv[1]), float(sys.argv[2])))
