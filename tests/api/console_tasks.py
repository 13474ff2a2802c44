"""Python tasks for the console's browser tests (loaded by ``littleflow serve --tasks``)."""

import time
from pathlib import Path


def fetch(input):
    time.sleep(0.4)
    return {"document": "hello", **(input or {})}


def clean(input):
    time.sleep(0.4)
    return {"clean": True}


def store(input):
    time.sleep(0.4)
    return {"stored": 1}


def index(input):
    return {"indexed": 1}


def notify(input):
    return {"notified": True}


def crash(input):
    raise RuntimeError("the disk is full")


def chatty(input):
    """Prints a line, then waits (at most a minute) for the file ``input["go"]`` before its second."""
    print("first line", flush=True)
    deadline = time.monotonic() + 60
    while not Path(input["go"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("second line", flush=True)
    return {"said": 2}


def hostile(input):
    for n in range(1, 61):
        print(f"line {n}")
    print("<img src=x onerror=alert(1)>")
    return {}


def say(input):
    print(f"saying {input}")
    return input
