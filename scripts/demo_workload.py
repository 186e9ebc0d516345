"""Sample Ray workload for the Ray History demo.

Runs as a Ray driver against a running head (RAY_ADDRESS) and leaves a bit of everything
behind for the history server to show: successful tasks, a failing task with a clear error,
an actor with a method call, and printed output in worker logs.
`demo_workload.py job` is the entrypoint of the demo's submitted job.
"""

import sys
import time

import ray

# Ray writes task events (and export event files) about once a second: a driver that exits
# at once loses its last batch, so every driver waits this long before shutting down.
FLUSH_WAIT_S = 3


@ray.remote
def square(x):
    print(f"square({x}) = {x * x}")
    return x * x


@ray.remote
def boom():
    print("boom() is about to fail")
    raise ValueError("demo failure: boom() raised on purpose")


@ray.remote
class Counter:
    def __init__(self):
        self.value = 0

    def incr(self, by):
        self.value += by
        print(f"Counter.incr({by}) -> {self.value}")
        return self.value


def submitted_job():
    """The entrypoint of the demo's submitted job: a few tasks, then a line in the job log."""
    ray.init()
    print(f"demo job total: {sum(ray.get([square.remote(i) for i in range(3)]))}")
    time.sleep(FLUSH_WAIT_S)
    ray.shutdown()


def main():
    ray.init()
    results = ray.get([square.remote(i) for i in range(4)])
    print(f"squares: {results}")

    try:
        ray.get(boom.remote())
    except ray.exceptions.RayTaskError as err:
        print(f"boom() failed as expected: {type(err.cause).__name__}")

    counter = Counter.options(name="demo_counter").remote()
    print(f"counter: {ray.get([counter.incr.remote(n) for n in (1, 2, 3)])}")
    time.sleep(FLUSH_WAIT_S)
    ray.shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["job"]:
        submitted_job()
    else:
        main()
