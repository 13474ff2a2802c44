"""Python tasks for the console's browser tests (loaded by ``littleflow serve --tasks``)."""

import time


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
